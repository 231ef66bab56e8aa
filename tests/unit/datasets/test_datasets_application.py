"""The datasets application's use cases on the in-memory event store, with the file store in a dict:
upload, duplicate upload, list, read, browse and search, rename, delete, legacy datasets."""

import hashlib
import itertools
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from datasets_service.adapters.page_cache import PageCache
from datasets_service.adapters.read_model import DatasetsProjection, DatasetsReadModel
from datasets_service.application import BlobMissing, DatasetsApplication, Upload
from datasets_service.domain.errors import (
    Conflict,
    InvalidDataset,
    InvalidInput,
    NotFound,
    StoredFileUnreadable,
    TooManyRecords,
    UploadTooLarge,
)
from datasets_service.domain.records import Record
from datasets_service.domain.upload import Limits
from eventlog import InMemoryEventStore, NewEvent, to_timestamp
from servicehost.clock import utc_now
from tests.unit.in_memory import Projected, projected
from workbench.datasets.v1.datasets_pb2 import DatasetDeleted, DatasetRegistered, DatasetRenamed, RecordFormat

FILE = b'{"id": "a", "prompt": "Say a", "name": "Ada"}\n{"messages": [{"role": "user", "content": "Hi"}]}\n'


def prompts(count: int, start: int = 0) -> bytes:
    return "".join(
        json.dumps({"id": f"r{n}", "prompt": f"Say {n}", "tag": f"t{n % 3}"}) + "\n" for n in range(start, count)
    ).encode()


class Files:
    """The file store, in a dict, counting what it is asked."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.gets: list[str] = []
        self.fail_put_after: int | None = None

    async def put(self, name: str, data: bytes) -> None:
        if self.fail_put_after is not None and len(self.blobs) >= self.fail_put_after:
            raise ConnectionError("the object store went away")
        self.blobs[name] = data

    async def get(self, name: str) -> bytes:
        self.gets.append(name)
        if name not in self.blobs:
            raise BlobMissing(name)
        return self.blobs[name]

    async def delete(self, name: str) -> None:
        if self.blobs.pop(name, None) is None:
            raise BlobMissing(name)


def application(
    world: Projected, files: Files, spool: Path, max_upload_bytes: int = 10_000, **options: object
) -> DatasetsApplication:
    ids = (f"ds_{n:012x}" for n in itertools.count(1))
    return DatasetsApplication(
        world.store,
        world.runner,
        DatasetsReadModel(world.database),
        files,
        PageCache(1 << 20),
        max_upload_bytes,
        spool_dir=str(spool),
        new_id=lambda: next(ids),
        **options,  # type: ignore[arg-type]
    )


async def chunks(data: bytes, size: int = 7) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def read(app: DatasetsApplication, dataset_id: str, offset: int = 0, limit: int = 0) -> list[Record]:
    return [record async for record in app.read_records(dataset_id, offset, limit)]


@pytest.fixture
async def world() -> AsyncIterator[Projected]:
    async with projected(DatasetsProjection()) as world:
        yield world


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    folder = tmp_path / "spool"
    folder.mkdir()
    return folder


@pytest.fixture
def files() -> Files:
    return Files()


@pytest.fixture
def app(world: Projected, files: Files, spool: Path) -> DatasetsApplication:
    return application(world, files, spool, page_records=4)


def leftovers(spool: Path) -> list[Path]:
    """What is left in the spool folder (an upload's spooled file is always removed)."""
    return list(spool.iterdir())


async def events(world: Projected) -> list[type]:
    return [type(stored.event) for stored in await world.store.read("wb.datasets.>")]


async def test_an_upload_is_stored_in_pages_registered_listed_and_read_back(
    world: Projected, files: Files, spool: Path, app: DatasetsApplication
) -> None:
    data = prompts(10)

    outcome = await app.upload_dataset(Upload("../questions.jsonl"), chunks(data))

    dataset = outcome.dataset
    assert (dataset.dataset_id, dataset.name, dataset.record_count, dataset.object_name) == (
        "ds_000000000001",
        "questions.jsonl",
        10,
        "",
    )
    assert (dataset.sha256, dataset.size_bytes) == (hashlib.sha256(data).hexdigest(), len(data))
    assert (outcome.already_registered, outcome.report.problems, outcome.report.skipped_records) == (False, (), 0)
    assert sorted(files.blobs) == ["ds_000000000001.p00000", "ds_000000000001.p00001", "ds_000000000001.p00002"]
    [stored] = await world.store.read("wb.datasets.>")
    assert isinstance(stored.event, DatasetRegistered)
    assert [(p.object_name, p.record_count) for p in stored.event.pages] == [
        ("ds_000000000001.p00000", 4),
        ("ds_000000000001.p00001", 4),
        ("ds_000000000001.p00002", 2),
    ]
    assert all(p.sha256 == hashlib.sha256(files.blobs[p.object_name]).hexdigest() for p in stored.event.pages)
    assert await app.list_datasets() == [dataset]
    assert leftovers(spool) == []  # the spooled upload is gone

    records = await read(app, dataset.dataset_id)
    assert [(r.record_id, r.index, r.prompt) for r in records] == [(f"r{n}", n, f"Say {n}") for n in range(10)]
    assert json.loads(records[4].metadata_json) == {"tag": "t1"}


async def test_a_range_of_records_fetches_only_the_pages_that_hold_it(files: Files, app: DatasetsApplication) -> None:
    dataset = (await app.upload_dataset(Upload("a.jsonl"), chunks(prompts(10)))).dataset

    middle = await read(app, dataset.dataset_id, offset=3, limit=2)
    last = await read(app, dataset.dataset_id, offset=9, limit=100)

    assert [r.record_id for r in middle] == ["r3", "r4"]
    assert [r.record_id for r in last] == ["r9"]
    assert files.gets == ["ds_000000000001.p00000", "ds_000000000001.p00001", "ds_000000000001.p00002"]
    assert await read(app, dataset.dataset_id, offset=10) == []
    await read(app, dataset.dataset_id, offset=4, limit=4)
    assert len(files.gets) == 3  # that page was parsed already
    with pytest.raises(InvalidInput, match="must not be negative"):
        await read(app, dataset.dataset_id, offset=-1)


async def test_a_bad_file_one_too_large_or_with_too_many_records_leaves_no_trace(
    world: Projected, files: Files, spool: Path
) -> None:
    app = application(world, files, spool, max_upload_bytes=200, limits=Limits(max_records=3), page_records=1)

    with pytest.raises(InvalidDataset, match="line 3") as refused:
        await app.upload_dataset(Upload("bad.jsonl"), chunks(b'{"prompt": "ok"}\n{"prompt": "ok"}\n{"prompt": 3}\n'))
    with pytest.raises(UploadTooLarge, match="WB_MAX_UPLOAD_BYTES"):
        await app.upload_dataset(Upload("big.jsonl"), chunks(b"x" * 201))
    with pytest.raises(TooManyRecords, match="WB_DATASETS_MAX_RECORDS"):
        await app.upload_dataset(Upload("many.jsonl"), chunks(b'{"prompt": "x"}\n' * 4))

    assert refused.value.report.problems[0].field == "prompt"
    assert await world.store.read("wb.datasets.>") == [] and files.blobs == {}  # pages put, then removed
    assert await app.list_datasets() == []
    assert leftovers(spool) == []


async def test_an_upload_whose_pages_cannot_all_be_stored_removes_those_it_stored(
    world: Projected, files: Files, spool: Path
) -> None:
    app = application(world, files, spool, page_records=2)
    files.fail_put_after = 2

    with pytest.raises(ConnectionError):
        await app.upload_dataset(Upload("a.jsonl"), chunks(prompts(9)))

    assert files.blobs == {} and await world.store.read("wb.datasets.>") == []
    assert leftovers(spool) == []


async def test_an_upload_cut_off_leaves_no_spooled_file(app: DatasetsApplication, spool: Path) -> None:
    async def cut() -> AsyncIterator[bytes]:
        yield b'{"prompt": "x"}\n'
        raise InvalidInput("the upload ended before its trailer")

    with pytest.raises(InvalidInput, match="trailer"):
        await app.upload_dataset(Upload("a.jsonl"), cut())

    assert leftovers(spool) == []


async def test_with_skip_invalid_the_valid_records_are_registered_and_the_others_reported(
    app: DatasetsApplication,
) -> None:
    data = b'{"prompt": "a"}\n{"prompt": 1}\nnope\n{"prompt": "d"}\n'

    outcome = await app.upload_dataset(Upload("a.jsonl", skip_invalid=True), chunks(data))

    assert (outcome.dataset.record_count, outcome.dataset.skipped_records) == (2, 2)
    assert [(p.line, p.field) for p in outcome.report.problems] == [(2, "prompt"), (3, None)]
    assert outcome.report.skipped_records == 2
    assert [r.record_id for r in await read(app, outcome.dataset.dataset_id)] == ["line-1", "line-4"]


async def test_uploading_the_content_of_a_live_dataset_answers_that_dataset(
    world: Projected, files: Files, app: DatasetsApplication
) -> None:
    first = await app.upload_dataset(Upload("a.jsonl"), chunks(FILE))
    blobs = dict(files.blobs)

    again = await app.upload_dataset(Upload("other name.jsonl"), chunks(FILE, size=3))

    assert again.already_registered and again.dataset == first.dataset
    assert files.blobs == blobs and await events(world) == [DatasetRegistered]
    assert len(await app.list_datasets()) == 1

    await app.delete_dataset(first.dataset.dataset_id)  # a deleted dataset is not answered
    fresh = await app.upload_dataset(Upload("a.jsonl"), chunks(FILE))
    assert not fresh.already_registered and fresh.dataset.dataset_id == "ds_000000000002"


async def test_a_strict_upload_of_a_file_registered_with_records_skipped_is_told_about_them(
    app: DatasetsApplication,
) -> None:
    data = b'{"prompt": "a"}\n{"prompt": 1}\n'
    skipped = await app.upload_dataset(Upload("a.jsonl", skip_invalid=True), chunks(data))

    with pytest.raises(InvalidDataset, match='line 2: field "prompt"'):
        await app.upload_dataset(Upload("a.jsonl"), chunks(data))
    again = await app.upload_dataset(Upload("a.jsonl", skip_invalid=True), chunks(data))

    assert again.already_registered and again.dataset == skipped.dataset
    assert again.report.skipped_records == 1


async def test_csv_and_parquet_uploads_keep_their_format(app: DatasetsApplication) -> None:
    outcome = await app.upload_dataset(Upload("sheet"), chunks(b"id,prompt,who\nx,Say x,Ada\n"))

    assert outcome.dataset.format == RecordFormat.RECORD_FORMAT_CSV
    assert outcome.report.line_word == "row"
    [record] = await read(app, outcome.dataset.dataset_id)
    assert (record.record_id, record.prompt, record.metadata_json) == ("x", "Say x", '{"who":"Ada"}')


async def test_a_page_of_records_without_a_search_comes_from_page_math(files: Files, app: DatasetsApplication) -> None:
    dataset = (await app.upload_dataset(Upload("a.jsonl"), chunks(prompts(10)))).dataset

    page = await app.list_records(dataset.dataset_id, offset=5, limit=2)

    assert ([r.record_id for r in page.records], page.total) == (["r5", "r6"], 10)
    assert files.gets == ["ds_000000000001.p00001"]
    assert len((await app.list_records(dataset.dataset_id)).records) == 10  # limit 0: the default
    with pytest.raises(InvalidInput, match="limit must be from 0 to 1000"):
        await app.list_records(dataset.dataset_id, limit=1001)


async def test_a_search_matches_ids_inputs_and_metadata_ignoring_case_and_counts_every_match(
    app: DatasetsApplication,
) -> None:
    lines = [
        {"id": "Alpha", "prompt": "first"},
        {"id": "b", "prompt": "Tell me about ALPHAbets"},
        {"id": "c", "messages": [{"role": "user", "content": "nothing here"}], "who": "alphonse"},
        {"id": "d", "messages": [{"role": "user", "content": "the alpha and omega"}]},
        {"id": "e", "prompt": "no", "note": {"kind": "Alpha"}},
        {"id": "f", "prompt": "none"},
    ]
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    dataset = (await app.upload_dataset(Upload("a.jsonl"), chunks(data))).dataset

    everything = await app.list_records(dataset.dataset_id, q="ALPHA")
    window = await app.list_records(dataset.dataset_id, offset=1, limit=2, q="alpha")
    nothing = await app.list_records(dataset.dataset_id, q="zeta")

    assert ([r.record_id for r in everything.records], everything.total) == (["Alpha", "b", "d", "e"], 4)
    assert ([r.record_id for r in window.records], window.total) == (["b", "d"], 4)
    assert [r.index for r in window.records] == [1, 3]
    assert (nothing.records, nothing.total) == ((), 0)
    assert (await app.list_records(dataset.dataset_id, q="alphon")).total == 1  # metadata


async def test_a_search_parses_only_the_pages_whose_text_holds_it_yet_finds_escaped_text(
    app: DatasetsApplication,
) -> None:
    data = prompts(10) + b'{"id": "q\\"uote", "prompt": "two\\nlines", "x": "back\\\\slash"}\n'
    dataset = (await app.upload_dataset(Upload("a.jsonl"), chunks(data))).dataset

    one = await app.list_records(dataset.dataset_id, q="SAY 7")
    assert ([r.record_id for r in one.records], app.cache.loads) == (["r7"], 1)  # pages 0 and 2 were not parsed

    for q, expected in [
        ('"tag":"t1"', ["r1", "r4", "r7"]),  # metadata as its JSON shows it
        ('q"u', ['q"uote']),
        ("o\nl", ['q"uote']),
        ("k\\\\s", ['q"uote']),  # metadata is searched as its JSON text: a backslash doubled
    ]:
        assert [r.record_id for r in (await app.list_records(dataset.dataset_id, q=q)).records] == expected


async def test_renaming_a_dataset_shows_in_the_list_and_is_refused_for_an_empty_name(
    world: Projected, app: DatasetsApplication
) -> None:
    dataset = (await app.upload_dataset(Upload("a.jsonl"), chunks(FILE))).dataset

    renamed = await app.rename_dataset(dataset.dataset_id, "../Candidates\x00 2026")

    assert renamed.name == "Candidates 2026"
    assert [info.name for info in await app.list_datasets()] == ["Candidates 2026"]
    assert await events(world) == [DatasetRegistered, DatasetRenamed]
    with pytest.raises(InvalidInput, match="must not be empty"):
        await app.rename_dataset(dataset.dataset_id, " ")
    for unknown in ["ds_ffffffffffff", "wb.>"]:
        with pytest.raises(NotFound):
            await app.rename_dataset(unknown, "x")


async def test_deleting_a_dataset_removes_its_pages_and_then_it_is_not_found(
    world: Projected, files: Files, app: DatasetsApplication
) -> None:
    kept = (await app.upload_dataset(Upload("a.jsonl"), chunks(FILE))).dataset
    dataset = (await app.upload_dataset(Upload("b.jsonl"), chunks(prompts(10)))).dataset

    await app.delete_dataset(dataset.dataset_id)

    assert sorted(files.blobs) == ["ds_000000000001.p00000"]
    assert await app.list_datasets() == [kept]
    assert await events(world) == [DatasetRegistered, DatasetRegistered, DatasetDeleted]
    for call in [
        app.get_dataset(dataset.dataset_id),
        app.delete_dataset(dataset.dataset_id),
        app.rename_dataset(dataset.dataset_id, "x"),
        read(app, dataset.dataset_id),
        app.list_records(dataset.dataset_id),
        app.delete_dataset("ds_ffffffffffff"),
    ]:
        with pytest.raises(NotFound):
            await call


async def test_a_delete_that_races_another_writer_is_a_conflict_not_a_double_delete(files: Files, spool: Path) -> None:
    class Racing(InMemoryEventStore):
        """Another writer appends to the dataset between this one's read and its append."""

        async def append(self, new: NewEvent) -> int:
            if isinstance(new.event, DatasetDeleted) and not getattr(self, "raced", False):
                self.raced = True
                await super().append(NewEvent(new.subject, DatasetRenamed(dataset_id=new.event.dataset_id, name="x")))
            return await super().append(new)

    async with projected(DatasetsProjection(), Racing()) as world:
        app = application(world, files, spool)
        dataset = (await app.upload_dataset(Upload("a.jsonl"), chunks(FILE))).dataset

        with pytest.raises(Conflict, match="changed meanwhile"):
            await app.delete_dataset(dataset.dataset_id)

        assert len(await world.store.read("wb.datasets.>")) == 2
        assert files.blobs  # nothing was deleted


async def test_a_stored_page_that_was_changed_or_lost_is_reported_not_served(
    files: Files, app: DatasetsApplication
) -> None:
    changed = (await app.upload_dataset(Upload("a.jsonl"), chunks(FILE))).dataset
    lost = (await app.upload_dataset(Upload("b.jsonl"), chunks(prompts(3)))).dataset
    files.blobs["ds_000000000001.p00000"] += b'{"id": "extra", "prompt": "extra"}\n'
    del files.blobs["ds_000000000002.p00000"]

    with pytest.raises(StoredFileUnreadable, match=r"page 0 of dataset ds_000000000001 .* does not match its sha256"):
        await read(app, changed.dataset_id)
    with pytest.raises(StoredFileUnreadable, match="missing from the object store"):
        await read(app, lost.dataset_id)


async def test_a_dataset_registered_before_pages_existed_still_reads_searches_and_deletes(
    world: Projected, files: Files, app: DatasetsApplication
) -> None:
    legacy = b'{"id": "a", "prompt": "Say a"}\n\n{"messages": [{"role": "user", "content": "Hi"}], "who": "Ada"}\n'
    files.blobs["ds_00000000abcd.jsonl"] = legacy
    await world.runner.wait_for(
        await world.store.append(
            NewEvent(
                "wb.datasets.ds_00000000abcd",
                DatasetRegistered(
                    dataset_id="ds_00000000abcd",
                    name="old.jsonl",
                    format=RecordFormat.RECORD_FORMAT_MIXED,
                    record_count=2,
                    sha256=hashlib.sha256(legacy).hexdigest(),
                    object_name="ds_00000000abcd.jsonl",
                    size_bytes=len(legacy),
                    registered_at=to_timestamp(utc_now()),
                ),
            )
        )
    )

    records = await read(app, "ds_00000000abcd")
    found = await app.list_records("ds_00000000abcd", q="ada")

    assert [(r.record_id, r.index, r.prompt) for r in records] == [("a", 0, "Say a"), ("line-3", 1, None)]
    assert [r.record_id for r in found.records] == ["line-3"]
    assert (await app.get_dataset("ds_00000000abcd")).object_name == "ds_00000000abcd.jsonl"
    await app.delete_dataset("ds_00000000abcd")
    assert "ds_00000000abcd.jsonl" not in files.blobs
