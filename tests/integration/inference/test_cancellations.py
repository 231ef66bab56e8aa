"""A worker hears a run's cancellation as it is stored (core NATS sees what JetStream stores)."""

import asyncio
from datetime import UTC, datetime

from eventlog import JetStreamEventStore, NewEvent, to_timestamp
from inference_service.adapters.cancellations import CancelWatch
from workbench.inference.v1 import inference_pb2 as pb


async def test_a_stored_cancellation_is_heard_at_once_and_other_run_events_are_not_taken_for_one(
    stream_log: JetStreamEventStore,
) -> None:
    watch = CancelWatch()
    await watch.start(stream_log.nc)
    try:
        await stream_log.append(NewEvent("wb.runs.run_1", pb.RunCompleted(run_id="run_1", done=1)))
        await stream_log.append(
            NewEvent("wb.runs.run_2", pb.RunCancelled(run_id="run_2", cancelled_at=to_timestamp(datetime.now(UTC))))
        )

        await asyncio.wait_for(watch.event_for("run_2").wait(), 5)
        assert not watch.event_for("run_1").is_set()
    finally:
        await watch.stop()
