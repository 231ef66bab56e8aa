"""Fuzzing the upload parser: whatever the bytes, the verdict is a registered dataset whose records
read back clean, or a refusal whose problems name a line (or row) that is in the file; never an
unhandled exception. Bounded in time: a few seconds each (the `ci` profile of hypothesis, active
when CI is set, runs the same number of examples derandomized)."""

import json
import re
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datasets_service.adapters.page_cache import PageCache
from datasets_service.adapters.read_model import DatasetsProjection, DatasetsReadModel
from datasets_service.application import DatasetsApplication, Upload
from datasets_service.domain.errors import InvalidDataset, InvalidInput
from datasets_service.domain.records import Record
from datasets_service.domain.upload import Limits
from datasets_service.domain.validation import MAX_RECORD_ID_BYTES
from tests.fuzz.upload_inputs import csv_files, jsonl_files
from tests.unit.datasets.checking import Uploads
from tests.unit.datasets.test_datasets_application import Files
from tests.unit.in_memory import projected

CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
TEXT_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# What may refuse a file as a whole, without a line: it has no records, or is not Parquet at all.
WHOLE_FILE_REFUSALS = ("the file holds no records", "the file is not a readable Parquet file", "the Parquet file needs")
# Small enough that the line limit is met too; the per-example deadline catches a parse that is
# slow for its size (a quadratic path is a way to stall the service).
LIMITS = Limits(max_records=1_000, max_line_bytes=4096)
FUZZ = settings(
    max_examples=400,
    deadline=timedelta(seconds=2),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def uploads(tmp_path_factory: pytest.TempPathFactory) -> Uploads:
    return Uploads(tmp_path_factory.mktemp("fuzz"))


def check_verdict(uploads: Uploads, data: bytes, name: str, skip_invalid: bool) -> None:
    lines_in_file = data.count(b"\n") + 1
    try:
        checked, records = uploads.check(data, name, skip_invalid, LIMITS)
    except InvalidDataset as refusal:
        problems = refusal.report.problems
        assert problems, "a refusal for bad lines names at least one"
        for problem in problems:
            assert 1 <= problem.line <= lines_in_file, problem
            assert problem.reason and not CONTROL.search(problem.reason), problem
            assert not CONTROL.search(problem.field or ""), problem
        return
    except InvalidInput as refusal:
        assert str(refusal).startswith(WHOLE_FILE_REFUSALS), refusal
        return
    assert checked.record_count == len(records) >= 1
    assert len({record.record_id for record in records}) == len(records)
    for record in records:
        check_record(record)
    if not skip_invalid:
        assert not checked.report.problems


def check_record(record: Record) -> None:
    """What every stored record keeps to, whatever the file was."""
    assert record.record_id.strip() and not CONTROL.search(record.record_id)
    assert len(record.record_id.encode()) <= MAX_RECORD_ID_BYTES
    assert (record.prompt is None) != (not record.messages)
    for text in [record.prompt or "", *(message.content for message in record.messages)]:
        assert not TEXT_CONTROL.search(text)
        text.encode()  # no lone surrogate
    metadata = json.loads(record.metadata_json)
    assert isinstance(metadata, dict)
    assert not any(CONTROL.search(name) for name in metadata)
    if record.json_schema:
        assert isinstance(json.loads(record.json_schema), dict)


@FUZZ
@given(data=st.binary(max_size=3000), name=st.sampled_from(["a.jsonl", "a.csv", "upload"]), skip=st.booleans())
def test_any_bytes_are_registered_or_refused_with_a_line(uploads: Uploads, data: bytes, name: str, skip: bool) -> None:
    check_verdict(uploads, data, name, skip)


@FUZZ
@given(data=jsonl_files(), skip=st.booleans())
def test_near_valid_jsonl_is_registered_clean_or_refused_with_a_line(uploads: Uploads, data: bytes, skip: bool) -> None:
    check_verdict(uploads, data, "a.jsonl", skip)


@FUZZ
@given(data=csv_files(), skip=st.booleans())
def test_near_valid_csv_is_registered_clean_or_refused_with_a_row(uploads: Uploads, data: bytes, skip: bool) -> None:
    check_verdict(uploads, data, "a.csv", skip)


@settings(FUZZ, max_examples=60)
@given(data=jsonl_files(), name=st.sampled_from(["a.jsonl", "upload", "a.parquet"]))
def test_content_detection_never_crashes_on_near_valid_files(uploads: Uploads, data: bytes, name: str) -> None:
    check_verdict(uploads, data, name, skip_invalid=True)


def test_the_fuzzed_files_reach_registration_and_refusal(uploads: Uploads) -> None:
    """A guard on the strategies: they must make both valid and invalid files, or the properties
    above would only ever test one side (about one file in ten registers; the bound is loose so
    that it never fails by chance)."""
    verdicts = {"registered": 0, "refused": 0}

    @settings(FUZZ, max_examples=200)
    @given(data=jsonl_files())
    def count(data: bytes) -> None:
        try:
            uploads.check(data, "a.jsonl", True, LIMITS)
        except InvalidInput:
            verdicts["refused"] += 1
            return
        verdicts["registered"] += 1

    count()
    assert verdicts["registered"] >= 1 and verdicts["refused"] >= 1, verdicts


@pytest.fixture(scope="module")
async def datasets(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[DatasetsApplication]:
    """The datasets application on the in-memory event store, its file store a dict (as in
    tests/unit/datasets), kept for every example: uploads of the same content answer the first."""
    async with projected(DatasetsProjection()) as world:
        spool = tmp_path_factory.mktemp("spool")
        yield DatasetsApplication(
            world.store,
            world.runner,
            DatasetsReadModel(world.database),
            Files(),
            PageCache(1 << 20),
            max_upload_bytes=1 << 20,
            limits=LIMITS,
            page_records=3,
            spool_dir=str(spool),
        )


async def one_chunk(data: bytes) -> AsyncIterator[bytes]:
    yield data


@settings(FUZZ, max_examples=60)
@given(data=jsonl_files(), skip=st.booleans())
async def test_the_application_registers_what_reads_back_or_refuses(
    datasets: DatasetsApplication, data: bytes, skip: bool
) -> None:
    """Through the whole upload (spool, check, pages, register), and back (pages read and parsed)."""
    try:
        outcome = await datasets.upload_dataset(Upload("fuzz.jsonl", skip), one_chunk(data))
    except InvalidDataset as refusal:
        assert refusal.report.problems
        return
    except InvalidInput as refusal:
        assert str(refusal).startswith(WHOLE_FILE_REFUSALS), refusal
        return
    records = [record async for record in datasets.read_records(outcome.dataset.dataset_id)]
    assert len(records) == outcome.dataset.record_count >= 1
    for record in records:
        check_record(record)
