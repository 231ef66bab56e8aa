"""StartRun's use case against a real event log and work queue, when the parts behind it are slow.

Stories: a run whose read model lags is still answered (queued, from its own events), never with an
error that would make the user start it twice; an append the event log did not confirm is answered
Unavailable; when that append landed after all, the user's retry with the same request id answers
the one run and queues its shards, and without a retry the reconciler queues them.
"""

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from eventlog import AppendTimeout, EventStore, JetStreamEventStore, NewEvent, ProjectionRunner
from inference_service.adapters.datasets_client import DatasetSummary
from inference_service.adapters.read_model import RunsProjection, RunsReadModel
from inference_service.adapters.work_queue import WORK_STREAM, WorkQueue
from inference_service.application import InferenceApplication
from inference_service.domain.errors import Unavailable
from inference_service.domain.models import ModelSpec, Sampling
from inference_service.domain.state import RunStatus, run_id_for_request
from servicehost.database import create_engine
from workbench.inference.v1 import inference_pb2 as pb

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
SPEC = ModelSpec("tiny-a", "Tiny A", "vllm", "/models/tiny-a", "local", 512, Sampling(max_tokens=8))
RUN_ID = "run_000000000001"


class ThreeRecords:
    async def get(self, dataset_id: str) -> DatasetSummary:
        return DatasetSummary(dataset_id, "three.jsonl", 3)


class NeverConfirmed(JetStreamEventStore):
    async def append(self, new: NewEvent) -> int:
        raise AppendTimeout(new.subject, 30)


class StalledOnce(JetStreamEventStore):
    """NATS as it is when it stalls: the first append is stored, but its acknowledgement comes too late."""

    stalled = False

    async def append(self, new: NewEvent) -> int:
        if self.stalled:
            return await super().append(new)
        self.stalled = True
        await super().append(new)
        raise AppendTimeout(new.subject, 30)


async def application(stream_log: JetStreamEventStore, store: EventStore, tmp_path: Path) -> InferenceApplication:
    engine = create_engine(f"sqlite:///{tmp_path / 'inference.db'}")
    queue = WorkQueue(stream_log.nc)
    await queue.ensure_stream()
    runner = ProjectionRunner(stream_log, engine, RunsProjection())  # its run() is never started: far behind
    return InferenceApplication(
        store,
        runner,
        RunsReadModel(engine),
        [SPEC],
        queue,
        ThreeRecords(),
        shard_size=2,
        clock=lambda: T0,
        new_id=lambda: RUN_ID,
        projection_wait_s=0.2,
    )


async def test_a_run_whose_read_model_lags_is_answered_queued_from_its_own_events(
    stream_log: JetStreamEventStore, tmp_path: Path
) -> None:
    app = await application(stream_log, stream_log, tmp_path)

    async with asyncio.timeout(5):
        run = await app.start_run("ds_1", "tiny-a")

    assert (run.run_id, run.status, run.dataset_id, run.model_id) == (RUN_ID, RunStatus.QUEUED, "ds_1", "tiny-a")
    assert (run.total, run.done, run.sampling, run.requested_at) == (3, 0, Sampling(max_tokens=8), T0)
    assert [type(stored.event) for stored in await stream_log.read(f"wb.runs.{RUN_ID}")] == [pb.RunRequested]
    assert (await stream_log.js.stream_info(WORK_STREAM)).state.messages == 2  # its shards are queued

    # And once the projector has caught up, the read model tells the same.
    await app.projection.catch_up()
    assert await app.get_run(RUN_ID) == run


async def test_a_run_the_event_log_did_not_confirm_is_unavailable_and_queues_nothing(
    stream_log: JetStreamEventStore, tmp_path: Path
) -> None:
    app = await application(stream_log, NeverConfirmed(stream_log.nc, stream_log.stream), tmp_path)

    with pytest.raises(Unavailable, match=r"did not confirm run run_000000000001 in time .*; try again"):
        await app.start_run("ds_1", "tiny-a")

    assert (await stream_log.js.stream_info(WORK_STREAM)).state.messages == 0


async def test_a_retry_after_a_stalled_append_answers_the_one_run_it_stored_and_queues_its_shards(
    stream_log: JetStreamEventStore, tmp_path: Path
) -> None:
    app = await application(stream_log, StalledOnce(stream_log.nc, stream_log.stream), tmp_path)

    with pytest.raises(Unavailable):
        await app.start_run("ds_1", "tiny-a", request_id="page-7f3a:tiny-a")
    retried = await app.start_run("ds_1", "tiny-a", request_id="page-7f3a:tiny-a")
    again = await app.start_run("ds_1", "tiny-a", request_id="page-7f3a:tiny-a")

    run_id = run_id_for_request("page-7f3a:tiny-a")
    assert (retried.run_id, retried.status, again.run_id) == (run_id, RunStatus.QUEUED, run_id)
    assert [type(stored.event) for stored in await stream_log.read(f"wb.runs.{run_id}")] == [pb.RunRequested]
    assert await stream_log.count("wb.runs.>") == 1  # one run, not two or three
    assert (await stream_log.js.stream_info(WORK_STREAM)).state.messages == 2  # its shards, once


async def test_the_reconciler_queues_the_shards_of_a_run_stored_after_its_caller_gave_up(
    stream_log: JetStreamEventStore, tmp_path: Path
) -> None:
    app = await application(stream_log, StalledOnce(stream_log.nc, stream_log.stream), tmp_path)
    with pytest.raises(Unavailable):
        await app.start_run("ds_1", "tiny-a", request_id="notebook-1")
    assert (await stream_log.js.stream_info(WORK_STREAM)).state.messages == 0
    await app.projection.catch_up()

    reconciling = asyncio.create_task(app.reconcile(every_s=0.05))
    try:
        async with asyncio.timeout(5):
            while True:
                if (await stream_log.js.stream_info(WORK_STREAM)).state.messages == 2:
                    break
                await asyncio.sleep(0.05)
    finally:
        reconciling.cancel()
        await asyncio.gather(reconciling, return_exceptions=True)
