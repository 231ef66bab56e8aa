"""The live relay against a real nats-server: a page that stays open never silently misses a stored result.

The follower's failure is the one thing made up here: a real event log whose first follow breaks off
after one event, once the test has done what happens in the gap (more results recorded, a purge).
"""

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence

from eventlog import JetStreamEventStore, NewEvent, RawEvent
from gateway.live import ClientQueue, LiveHub
from gateway.relay import NatsRelay
from workbench.inference.v1 import inference_pb2 as inf

Gap = Callable[[JetStreamEventStore], Awaitable[None]]


class BreaksOnce(JetStreamEventStore):
    """The real event log; its first follow fails right after one event, once `gap` has run."""

    def __init__(self, stream_log: JetStreamEventStore, gap: Gap) -> None:
        super().__init__(stream_log.nc, stream_log.stream)
        self.gap = gap
        self.starts: list[int | None] = []

    async def follow_raw(self, subjects: str | Sequence[str], start: int | None = 1) -> AsyncGenerator[RawEvent, None]:
        self.starts.append(start)
        first = len(self.starts) == 1
        inner = super().follow_raw(subjects, start)
        try:
            async for raw in inner:
                yield raw
                if first:
                    await self.gap(self)
                    raise ConnectionError("the connection to the stream was lost")
        finally:
            await inner.aclose()


def recorded(record_id: str) -> inf.ResultRecorded:
    return inf.ResultRecorded(
        run_id="run-1", dataset_id="ds-1", model_id="gemma", record_id=record_id, output_text="ok"
    )


async def record(stream_log: JetStreamEventStore, record_id: str) -> int:
    return await stream_log.append(
        NewEvent("wb.results.run-1", recorded(record_id), msg_id=f"result:run-1:{record_id}")
    )


async def next_result(client: ClientQueue) -> str | None:
    """The record id of the next result frame; None when the queue was closed."""
    text = await asyncio.wait_for(client.get(), timeout=5)
    return None if text is None else str(json.loads(text)["result"]["record_id"])


@contextlib.asynccontextmanager
async def relaying(relay: NatsRelay, events: JetStreamEventStore) -> AsyncIterator[None]:
    task = asyncio.create_task(relay.follow_events(events))
    try:
        async with asyncio.timeout(5):
            while relay.position is None:
                assert not task.done(), task
                await asyncio.sleep(0.01)
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_results_recorded_while_the_follower_was_down_still_reach_an_open_page(
    stream_log: JetStreamEventStore,
) -> None:
    await record(stream_log, "r0")  # before the relay started: the page fetched it over HTTP

    async def gap(events: JetStreamEventStore) -> None:
        await record(events, "r2")

    hub = LiveHub()
    relay = NatsRelay("unused", stream_log.stream, hub, first_backoff_s=0.01)
    flaky = BreaksOnce(stream_log, gap)
    async with relaying(relay, flaky):
        page = hub.subscribe()
        r1 = await record(stream_log, "r1")
        assert await next_result(page) == "r1"
        assert await next_result(page) == "r2"  # recorded in the gap, relayed on resuming
        await record(stream_log, "r3")
        assert await next_result(page) == "r3"

    assert flaky.starts == [2, r1 + 1]  # from the stream's end at start, then right after the last event seen
    assert not page.must_reload


async def test_when_the_missed_events_are_gone_every_open_page_is_told_to_reload(
    stream_log: JetStreamEventStore,
) -> None:
    async def gap(events: JetStreamEventStore) -> None:
        await record(events, "r2")
        await events.js.purge_stream(events.stream)  # r2 can no longer be replayed

    hub = LiveHub()
    relay = NatsRelay("unused", stream_log.stream, hub, first_backoff_s=0.01)
    async with relaying(relay, BreaksOnce(stream_log, gap)):
        page = hub.subscribe()
        await record(stream_log, "r1")
        assert await next_result(page) == "r1"
        assert await next_result(page) is None  # closed instead of silently lacking r2
        assert page.must_reload and not page.overflowed

        reloaded = hub.subscribe()  # the page refetches and reconnects: live again
        await record(stream_log, "r3")
        assert await next_result(reloaded) == "r3"


async def test_a_page_open_before_the_relay_followed_is_told_to_reload(stream_log: JetStreamEventStore) -> None:
    hub = LiveHub()
    early = hub.subscribe()  # e.g. opened while NATS was still unreachable

    async with relaying(NatsRelay("unused", stream_log.stream, hub), stream_log):
        assert await next_result(early) is None

    assert early.must_reload
