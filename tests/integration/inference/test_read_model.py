"""The runs read model, folded from a real event log, on SQLite and on Postgres.

Story: a run is requested, started, gets three results (one failed, one repeated after the dedup
window would have forgotten it) and completes; the tables show it, and a rebuild gives the same rows.
"""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from eventlog import JetStreamEventStore, NewEvent, ProjectionRunner
from inference_service.adapters import read_model
from inference_service.adapters.read_model import RunsProjection, RunsReadModel
from inference_service.adapters.run_log import RunLog
from inference_service.domain.commands import BeginRun, CompleteRun, RecordResult, RequestRun
from inference_service.domain.models import Sampling
from inference_service.domain.state import RunState, RunStatus, decide, record_result
from servicehost.database import create_engine

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path, postgres_url: str | None) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'var' / 'inference.db'}"
    elif postgres_url is None:
        pytest.skip("no Postgres server (set WB_TEST_POSTGRES_URL)")
    else:
        url = postgres_url
    engine = create_engine(url)
    yield engine
    engine.dispose()


def result(record_id: str, seconds: int, tokens: int, error: str = "") -> RecordResult:
    return RecordResult(
        "run_1",
        "ds_1",
        "tiny-a",
        record_id,
        "" if error else f"answer {record_id}",
        "error" if error else "length",
        6,
        tokens,
        40.0,
        error,
        T0 + timedelta(seconds=seconds),
    )


async def test_runs_and_results_are_folded_and_rebuilt_to_the_same_rows(
    stream_log: JetStreamEventStore, engine: Engine
) -> None:
    runs = RunLog(stream_log)
    runner = ProjectionRunner(stream_log, engine, RunsProjection())
    runner.reset()  # a shared Postgres may hold rows of an older stream
    queued = RunState("run_1", RunStatus.QUEUED, total=3)
    running = RunState("run_1", RunStatus.RUNNING, total=3)
    await runs.append(decide(RunState("run_1"), RequestRun("run_1", "ds_1", "tiny-a", Sampling(), 3, T0)))
    await runs.append(decide(queued, BeginRun("run_1", "w1", "vllm 0.32.0", "local", T0 + timedelta(seconds=1))))
    for item in (result("a", 2, 10), result("b", 3, 0, error="too long"), result("c", 5, 30)):
        await runs.append([record_result(item)])
    repeat = record_result(result("a", 9, 10))
    await stream_log.append(NewEvent(repeat.subject, repeat.event, msg_id="result:run_1:a:beyond-the-dedup-window"))
    await runs.append(decide(running, CompleteRun("run_1", 3, 1, T0 + timedelta(seconds=6))))

    await runner.catch_up()
    read = RunsReadModel(engine)
    run = read.get_run("run_1")
    assert run is not None
    assert (run.status, run.done, run.failed, run.output_tokens, run.total) == (RunStatus.COMPLETED, 3, 1, 40, 3)
    assert (run.engine, run.worker, run.model_revision) == ("vllm 0.32.0", "w1", "local")
    assert run.started_at == T0 + timedelta(seconds=1)
    assert run.tokens_per_second == pytest.approx(10.0)  # 40 tokens from start (1 s) to the last result (5 s)
    results = read.list_results(dataset_id="ds_1")
    assert [(r.record_id, r.output_text, r.error) for r in results] == [
        ("a", "answer a", ""),
        ("b", "", "too long"),
        ("c", "answer c", ""),
    ]
    assert read.list_runs("ds_1", active_only=True) == []

    before = (read.list_runs(), read.list_results(run_id="run_1"))
    await runner.rebuild()
    assert (read.list_runs(), read.list_results(run_id="run_1")) == before


async def test_results_of_some_records_are_read_in_recorded_order_in_chunked_queries(
    stream_log: JetStreamEventStore, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(read_model, "IN_CHUNK", 2)  # so five ids take three IN lists
    runs = RunLog(stream_log)
    runner = ProjectionRunner(stream_log, engine, RunsProjection())
    runner.reset()
    await runs.append(decide(RunState("run_1"), RequestRun("run_1", "ds_1", "tiny-a", Sampling(), 6, T0)))
    for seconds, record_id in enumerate(["f", "b", "e", "a", "d", "c"]):
        await runs.append([record_result(result(record_id, seconds, 1))])
    await runner.catch_up()
    read = RunsReadModel(engine)

    some = read.list_results(run_id="run_1", record_ids=["a", "c", "missing", "f", "a", "b"])

    assert [view.record_id for view in some] == ["f", "b", "a", "c"]  # as recorded; each once; unknown ids ignored
    assert [view.record_id for view in read.list_results(run_id="run_1", record_ids=["e"])] == ["e"]
    assert len(read.list_results(run_id="run_1")) == 6  # no record ids: every record
    assert read.list_results(dataset_id="ds_other", record_ids=["a"]) == []
