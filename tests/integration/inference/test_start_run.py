"""StartRun's use case against a real event log and work queue, when the parts behind it are slow.

Stories: a run whose read model lags is still answered (queued, from its own events), never with an
error that would make the user start it twice; an append the event log did not confirm is answered
Unavailable.
"""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from eventlog import AppendTimeout, EventLog
from devstack.natsserver import NatsServer
from inference_service.adapters.datasets_client import DatasetSummary
from inference_service.adapters.read_model import RunsReadModel
from inference_service.adapters.run_log import RunLog
from inference_service.adapters.work_queue import WORK_STREAM, WorkQueue
from inference_service.application import InferenceApplication
from inference_service.domain.errors import Unavailable
from inference_service.domain.models import ModelSpec, Sampling
from inference_service.domain.state import NewEvent, RunStatus
from inference_service.projector import database, runs_runner
from workbench.inference.v1 import inference_pb2 as pb

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SPEC = ModelSpec("tiny-a", "Tiny A", "vllm", "/models/tiny-a", "local", 512, Sampling(max_tokens=8))
RUN_ID = "run_000000000001"


class ThreeRecords:
    async def get(self, dataset_id: str) -> DatasetSummary:
        return DatasetSummary(dataset_id, "three.jsonl", 3)


class NeverConfirmed(RunLog):
    async def append(self, new_events: list[NewEvent]) -> list[int]:  # type: ignore[override]
        raise AppendTimeout(new_events[0].subject, 30)


@pytest.fixture
async def events(fresh_nats: NatsServer) -> AsyncIterator[EventLog]:
    log = await EventLog.connect(fresh_nats.url)
    await log.ensure_stream()
    yield log
    await log.close()


async def application(events: EventLog, runs: RunLog, tmp_path: Path) -> InferenceApplication:
    engine = database(f"sqlite:///{tmp_path / 'inference.db'}")
    queue = WorkQueue(events.nc)
    await queue.ensure_stream()
    runner = runs_runner(events, engine)  # its run() is never started: the projector is far behind
    return InferenceApplication(
        [SPEC],
        runs,
        queue,
        ThreeRecords(),
        runner,
        RunsReadModel(engine),
        shard_size=2,
        clock=lambda: T0,
        make_run_id=lambda: RUN_ID,
        projection_wait_s=0.2,
    )


async def test_a_run_whose_read_model_lags_is_answered_queued_from_its_own_events(
    events: EventLog, tmp_path: Path
) -> None:
    app = await application(events, RunLog(events), tmp_path)

    async with asyncio.timeout(5):
        run = await app.start_run("ds_1", "tiny-a")

    assert (run.run_id, run.status, run.dataset_id, run.model_id) == (RUN_ID, RunStatus.QUEUED, "ds_1", "tiny-a")
    assert (run.total, run.done, run.sampling, run.requested_at) == (3, 0, Sampling(max_tokens=8), T0)
    assert [type(stored.event) for stored in await events.read(f"wb.runs.{RUN_ID}")] == [pb.RunRequested]
    assert (await events.js.stream_info(WORK_STREAM)).state.messages == 2  # its shards are queued

    # And once the projector has caught up, the read model tells the same.
    await app.runner.catch_up()
    assert await app.get_run(RUN_ID) == run


async def test_a_run_the_event_log_did_not_confirm_is_unavailable_and_queues_nothing(
    events: EventLog, tmp_path: Path
) -> None:
    app = await application(events, NeverConfirmed(events), tmp_path)

    with pytest.raises(Unavailable, match=r"did not confirm run run_000000000001 in time .*; try again"):
        await app.start_run("ds_1", "tiny-a")

    assert (await events.js.stream_info(WORK_STREAM)).state.messages == 0
