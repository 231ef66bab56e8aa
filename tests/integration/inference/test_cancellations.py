"""A worker hears a run's cancellation as it is stored (core NATS sees what JetStream stores)."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from devstack.natsserver import NatsServer
from eventlog import JetStreamEventStore, NewEvent, to_timestamp
from inference_service.adapters.cancellations import CancelWatch
from workbench.inference.v1 import inference_pb2 as pb


@pytest.fixture
async def events(fresh_nats: NatsServer) -> AsyncIterator[JetStreamEventStore]:
    log = await JetStreamEventStore.connect(fresh_nats.url)
    await log.ensure_stream()
    yield log
    await log.close()


async def test_a_stored_cancellation_is_heard_at_once_and_other_run_events_are_not_taken_for_one(
    events: JetStreamEventStore,
) -> None:
    watch = CancelWatch()
    await watch.start(events.nc)
    try:
        await events.append(NewEvent("wb.runs.run_1", pb.RunCompleted(run_id="run_1", done=1)))
        await events.append(
            NewEvent("wb.runs.run_2", pb.RunCancelled(run_id="run_2", cancelled_at=to_timestamp(datetime.now(UTC))))
        )

        await asyncio.wait_for(watch.event_for("run_2").wait(), 5)
        assert not watch.event_for("run_1").is_set()
    finally:
        await watch.stop()
