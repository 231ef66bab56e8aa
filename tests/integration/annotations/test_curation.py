"""Curation on a real event log: disagreement folded from results, each filter, the counts, and a
rebuild that gives the same rows, on SQLite and on Postgres.

Story: six candidates, two models. They agree on r0, disagree on r1 (JSON: trajectory and pedigree),
r2 (after a rerun) and r4; r3 has a failed answer, r5 no answer at all. People marked r0, r2 and r3.
"""

import json
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import grpc
import pytest
from sqlalchemy import Engine
from sqlmodel import Session, SQLModel, select

from annotations_service.adapters.curation import (
    CurationAnswerRow,
    CurationProjection,
    CurationReadModel,
    DisagreementRow,
)
from annotations_service.adapters.read_model import AnnotationsProjection
from annotations_service.adapters.tables import AnnotationRow, OutputRow, ResultRow
from annotations_service.curation_queries import CurationQueries, RecordOrder
from annotations_service.domain.curation import RecordFilter
from annotations_service.domain.curation import select as select_records
from annotations_service.domain.names import record_subject
from devstack.natsserver import NatsServer
from eventlog import InMemoryEventStore, JetStreamEventStore, NewEvent, Projection, ProjectionRunner
from servicehost.database import create_engine
from servicehost.errors import InvalidInput
from tests.uploads import upload_requests
from workbench.annotations.v1.annotations_pb2 import (
    AnnotationKind,
    AnnotationRecorded,
    GetStatsRequest,
    QueryRecordsRequest,
)
from workbench.annotations.v1.annotations_pb2 import RecordFilter as ProtoFilter
from workbench.datasets.v1.datasets_pb2 import DatasetDeleted, Record
from workbench.datasets.v1.datasets_pb2_grpc import DatasetServiceStub
from workbench.inference.v1.inference_pb2 import ResultRecorded

from .conftest import annotations_settings, running
from .test_export import datasets_address  # noqa: F401  (the real datasets service, as a fixture)

GOLDEN = AnnotationKind.ANNOTATION_KIND_GOLDEN
FIXED = AnnotationKind.ANNOTATION_KIND_FIXED
WRONG = AnnotationKind.ANNOTATION_KIND_WRONG
DATASET = "ds1"
ORDER = ["r0", "r1", "r2", "r3", "r4", "r5"]
SEED_A = json.dumps({"recommendation": "hire", "trajectory": "rising", "pedigree": "strong"})
SEED_B = json.dumps({"recommendation": "Hire.", "trajectory": "flat", "pedigree": "average"})
RESULTS = [  # (run, record, model, text, error)
    ("run-a", "r0", "a", "Paris", ""),
    ("run-b", "r0", "b", "paris.", ""),
    ("run-a", "r1", "a", SEED_A, ""),
    ("run-b", "r1", "b", SEED_B, ""),
    ("run-a", "r2", "a", "Lyon", ""),
    ("run-b", "r2", "b", "Lyon", ""),
    ("run-b2", "r2", "b", "Paris", ""),  # a rerun: the latest answer is what counts
    ("run-a", "r3", "a", "Yes", ""),
    ("run-b", "r3", "b", "", "engine crashed"),
    ("run-a", "r4", "a", "No", ""),
    ("run-b", "r4", "b", "Yes", ""),
]
MARKS = [("r2", "a", GOLDEN), ("r3", "a", FIXED), ("r0", "b", WRONG)]


class Records:
    """The datasets service's side: the dataset's records in file order."""

    def __init__(self, record_ids: Sequence[str]) -> None:
        self.record_ids = record_ids

    async def record_batches(self, dataset_id: str) -> AsyncIterator[Sequence[Record]]:
        records = [Record(record_id=r, index=i) for i, r in enumerate(self.record_ids)]
        for start in range(0, len(records), 4):
            yield records[start : start + 4]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path, postgres_url: str | None) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'var' / 'annotations.db'}"
    elif postgres_url is None:
        pytest.skip("no Postgres server (set WB_TEST_POSTGRES_URL)")
    else:
        url = postgres_url
    engine = create_engine(url)
    yield engine
    engine.dispose()


async def append_story(stream_log: JetStreamEventStore, dataset_id: str = DATASET) -> dict[str, int]:
    """Appends the results, then the marks; answers projection name -> the sequence to wait for."""
    last: dict[str, int] = {}
    for run_id, record_id, model_id, text, error in RESULTS:
        result = ResultRecorded(
            run_id=run_id,
            dataset_id=dataset_id,
            record_id=record_id,
            model_id=model_id,
            output_text=text,
            error=error,
        )
        new = NewEvent(f"wb.results.{run_id}", result, msg_id=f"{dataset_id}:{run_id}:{record_id}")
        last["annotations_curation"] = await stream_log.append(new)
    for record_id, model_id, kind in MARKS:
        mark = AnnotationRecorded(
            dataset_id=dataset_id,
            record_id=record_id,
            model_id=model_id,
            kind=kind,
            output_text="x",
            source="workbench",
        )
        last["annotations"] = await stream_log.append(NewEvent(record_subject(dataset_id, record_id), mark))
    return last


def curation_rows(engine: Engine) -> list[tuple[object, ...]]:
    with Session(engine) as session:
        return [
            tuple(row.model_dump().values())
            for table in CurationProjection.tables
            for row in session.exec(select(table).order_by(*table.__table__.primary_key.columns))  # type: ignore[attr-defined]
        ]


async def test_filters_counts_and_a_rebuild_on_a_real_log(stream_log: JetStreamEventStore, engine: Engine) -> None:
    marks = ProjectionRunner(stream_log, engine, AnnotationsProjection())
    curation = ProjectionRunner(stream_log, engine, CurationProjection())
    for runner in (marks, curation):
        runner.reset()  # a shared Postgres may hold rows of an older stream
    await append_story(stream_log)
    # A deleted dataset's results are hidden, also those that arrive after the deletion.
    await stream_log.append(
        NewEvent("wb.results.run-gone", ResultRecorded(dataset_id="gone", record_id="g", model_id="a"))
    )
    await stream_log.append(NewEvent("wb.datasets.gone", DatasetDeleted(dataset_id="gone")))
    late = ResultRecorded(dataset_id="gone", record_id="h", model_id="a", output_text="late")
    await stream_log.append(NewEvent("wb.results.run-gone", late))
    for runner in (marks, curation):
        await runner.catch_up()
    queries = CurationQueries(CurationReadModel(engine), RecordOrder(Records(ORDER)))

    async def ids(wanted: RecordFilter, model_id: str = "", q: str = "") -> list[str]:
        page = await queries.query_records(DATASET, wanted, model_id, q, offset=0, limit=100)
        assert page.total == len(page.records)
        return [facts.record_id for facts in page.records]

    assert await ids(RecordFilter.EVERY) == ORDER
    assert await ids(RecordFilter.DIFFERENCES) == ["r1", "r2", "r4"]
    assert await ids(RecordFilter.GOLDEN) == ["r2"]
    assert await ids(RecordFilter.FIXED) == ["r3"]
    assert await ids(RecordFilter.WRONG) == ["r0"]
    assert await ids(RecordFilter.NEEDS_REVIEW) == ["r4", "r1"]  # most disagreed first; r2 is judged
    assert await ids(RecordFilter.NEEDS_REVIEW, "b") == ["r2", "r4", "r1"]  # nobody judged b's answers
    assert await ids(RecordFilter.GOLDEN, "b") == []
    assert await ids(RecordFilter.EVERY, q="PARIS") == ["r0", "r2"]  # any answer, any case
    assert await ids(RecordFilter.EVERY, "a", q="paris") == ["r0"]  # a's answers only
    assert await ids(RecordFilter.EVERY, q="R5") == ["r5"]  # the record id
    assert await ids(RecordFilter.DIFFERENCES, q="Hire") == ["r1"]

    page = await queries.query_records(DATASET, RecordFilter.EVERY, offset=2, limit=2)
    assert ([f.record_id for f in page.records], page.total) == (["r2", "r3"], 6)
    # An unfiltered page reads only its own records' facts: the same facts the whole dataset's read gives.
    whole = select_records(CurationReadModel(engine).facts(DATASET), ORDER, RecordFilter.EVERY)
    everything = {f.record_id: f for f in whole}
    page = await queries.query_records(DATASET, RecordFilter.EVERY, offset=1, limit=4)
    assert list(page.records) == [everything[record_id] for record_id in ORDER[1:5]]
    assert any(f.marks for f in page.records) and any(f.disagreement.differs for f in page.records)
    seed = (await queries.query_records(DATASET, RecordFilter.DIFFERENCES, limit=1)).records[0].disagreement
    assert (seed.differing_paths, round(seed.score, 3)) == (("$.trajectory", "$.pedigree"), 0.667)
    with pytest.raises(InvalidInput):
        await queries.query_records(DATASET, RecordFilter.EVERY, limit=1001)

    stats = await queries.stats(DATASET)
    overall = stats.overall
    assert (overall.total, overall.golden, overall.fixed, overall.wrong) == (6, 1, 1, 1)
    assert (overall.needs_review, overall.differing) == (2, 3)
    a, b = stats.by_model["a"], stats.by_model["b"]
    assert (a.total, a.golden, a.fixed, a.wrong, a.needs_review, a.differing) == (5, 1, 1, 0, 2, 3)
    assert (b.total, b.golden, b.fixed, b.wrong, b.needs_review, b.differing) == (5, 0, 0, 1, 3, 3)
    assert list(stats.by_model) == ["a", "b"]
    assert CurationReadModel(engine).facts("gone") == []

    before = curation_rows(engine)
    assert len(before) == 10 + 5 + 1  # latest answers, disagreements, the deleted dataset
    assert await curation.rebuild() == await stream_log.last_sequence()
    assert curation_rows(engine) == before
    with Session(engine) as session:
        assert session.get(DisagreementRow, (DATASET, "r3")).differs is False  # type: ignore[union-attr]


async def test_query_records_and_stats_over_grpc_with_the_real_datasets_service(
    fresh_nats: NatsServer,
    tmp_path: Path,
    datasets_address: str,  # noqa: F811
) -> None:
    lines = "".join(json.dumps({"id": record_id, "prompt": f"About {record_id}?"}) + "\n" for record_id in ORDER)
    async with grpc.aio.insecure_channel(datasets_address) as channel:
        uploaded = await DatasetServiceStub(channel).UploadDataset(upload_requests("cands.jsonl", lines.encode()))
    dataset_id = uploaded.dataset.dataset_id
    async for harness in running(annotations_settings(fresh_nats, tmp_path, datasets_address)):
        for name, sequence in (await append_story(harness.workers, dataset_id)).items():
            await harness.service.runner(name).wait_for(sequence)

        review = await harness.stub.QueryRecords(
            QueryRecordsRequest(dataset_id=dataset_id, filter=ProtoFilter.RECORD_FILTER_NEEDS_REVIEW, limit=1)
        )
        stats = await harness.stub.GetStats(GetStatsRequest(dataset_id=dataset_id))
        with pytest.raises(grpc.aio.AioRpcError) as bad_filter:
            await harness.stub.QueryRecords(QueryRecordsRequest(dataset_id=dataset_id, filter=99, limit=1))  # type: ignore[arg-type]
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await harness.stub.GetStats(GetStatsRequest(dataset_id="nope"))

    assert [(r.record_id, r.disagreement.differs, r.disagreement.score) for r in review.records] == [("r4", True, 1.0)]
    assert review.total == 2
    assert (stats.overall.total, stats.overall.needs_review, stats.overall.differing) == (6, 2, 3)
    assert (stats.by_model["b"].wrong, stats.by_model["b"].needs_review) == (1, 3)
    assert bad_filter.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


async def fold_at_batch_sizes(
    store: InMemoryEventStore,
    projection: Callable[[], Projection],
    tables: Sequence[type[SQLModel]],
    sizes: Sequence[int],
    folder: Path,
) -> dict[int, list[dict[str, Any]]]:
    """The projection's rows (table by table, sorted) after folding the whole log in batches of each size."""
    folded = {}
    for batch_size in sizes:
        engine = create_engine(f"sqlite:///{folder / f'{batch_size}.db'}")
        await ProjectionRunner(store, engine, projection(), batch_size=batch_size).catch_up()
        with Session(engine) as session:
            folded[batch_size] = [
                row
                for table in tables
                for row in sorted((item.model_dump() for item in session.exec(select(table))), key=json.dumps)
            ]
        engine.dispose()
    return folded


async def test_a_batch_of_results_folds_into_the_same_rows_as_one_result_at_a_time(tmp_path: Path) -> None:
    # Answers that replace each other within a batch and across batches, JSON and text, a failure,
    # and a dataset deleted midway (its earlier answers go, its later ones are ignored).
    store = InMemoryEventStore()

    def result(dataset_id: str, record_id: str, model_id: str, text: str, error: str = "") -> NewEvent:
        message = ResultRecorded(
            dataset_id=dataset_id, record_id=record_id, model_id=model_id, output_text=text, error=error
        )
        return NewEvent(f"wb.results.run-{model_id}", message)

    await store.append_many(
        [
            result("d1", "r1", "a", '{"verdict": "hire", "years": 3}'),
            result("d1", "r1", "b", '{"verdict": "pass", "years": 3}'),
            result("d1", "r2", "a", "Paris"),
            result("d2", "x1", "a", "gone soon"),
            result("d1", "r1", "b", '{"verdict": "hire", "years": 4}'),  # b answers r1 again
            result("d1", "r2", "b", "paris."),
            result("d1", "r3", "a", "", error="engine died"),
            result("d1", "r3", "b", "Lyon"),
        ]
    )
    await store.append(NewEvent("wb.datasets.d2", DatasetDeleted(dataset_id="d2")))
    await store.append_many([result("d2", "x1", "b", "too late"), result("d1", "r2", "c", "Rome")])

    folded = await fold_at_batch_sizes(
        store, CurationProjection, (CurationAnswerRow, DisagreementRow), (1, 3, 1000), tmp_path
    )

    assert folded[1] == folded[3] == folded[1000]
    verdicts = {row["record_id"]: row for row in folded[1000] if "differs" in row}
    assert sorted(verdicts) == ["r1", "r2", "r3"]  # d2's record went with its dataset
    assert json.loads(verdicts["r1"]["differing_paths"]) == ["$.years"]  # b's second answer counts
    assert verdicts["r2"]["differs"] is True  # Rome differs from Paris


async def test_the_annotations_read_model_folds_a_batch_into_the_same_rows_as_one_event_at_a_time(
    tmp_path: Path,
) -> None:
    # Results (a re-run replacing an answer), marks between them, and a dataset deleted midway.
    store = InMemoryEventStore()

    def result(run_id: str, dataset_id: str, record_id: str, model_id: str, text: str) -> NewEvent:
        message = ResultRecorded(
            run_id=run_id, dataset_id=dataset_id, record_id=record_id, model_id=model_id, output_text=text
        )
        return NewEvent(f"wb.results.{run_id}", message)

    def mark(record_id: str, model_id: str, run: str) -> NewEvent:
        golden = AnnotationKind.ANNOTATION_KIND_GOLDEN
        message = AnnotationRecorded(dataset_id="d1", record_id=record_id, model_id=model_id, kind=golden, run_id=run)
        return NewEvent(record_subject("d1", record_id), message)

    await store.append_many(
        [
            result("run-a", "d1", "r1", "a", "first"),
            result("run-b", "d1", "r1", "b", "other"),
            mark("r1", "a", "run-a"),
            result("run-a", "d1", "r2", "a", "two"),
            result("run-a2", "d1", "r1", "a", "rerun"),  # a new run of model a replaces its answer
            result("run-a", "d2", "x1", "a", "gone soon"),
            mark("r2", "a", "run-a"),
            result("run-a2", "d1", "r2", "a", "rerun two"),
        ]
    )
    await store.append(NewEvent("wb.datasets.d2", DatasetDeleted(dataset_id="d2")))
    await store.append_many([result("run-a", "d2", "x2", "a", "too late"), result("run-b", "d1", "r2", "b", "b2")])

    folded = await fold_at_batch_sizes(
        store, AnnotationsProjection, (OutputRow, ResultRow, AnnotationRow), (1, 4, 1000), tmp_path
    )

    assert folded[1] == folded[4] == folded[1000]
    outputs = {(row["record_id"], row["model_id"]): row["output_text"] for row in folded[1000] if "sequence" in row}
    assert outputs == {("r1", "a"): "rerun", ("r1", "b"): "other", ("r2", "a"): "rerun two", ("r2", "b"): "b2"}
