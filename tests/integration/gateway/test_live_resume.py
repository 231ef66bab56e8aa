"""The workbench WebSocket against a real nats-server: a page that reconnects with `since` gets exactly
the stored events it missed, then the live ones; one that cannot is told to reload; one that stops
reading is closed to resume while the others get every frame.

The gateway here is its live part, served by uvicorn on the test's own loop: the real socket handler,
LiveHub and NatsRelay following the real stream. What is made up are moments: the test can hold the
relay's following (a relay lagging behind the stream) and append events while a replay is running.
"""

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import nats
import pytest
import uvicorn
from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from nats.aio.client import Client as NatsClient
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as connect_socket
from websockets.exceptions import ConnectionClosed

from devstack.natsserver import NatsServer, free_port
from eventlog import InMemoryEventStore, JetStreamEventStore, NewEvent, RawEvent
from gateway.access import AccessBook
from gateway.auth import SessionSigner
from gateway.controllers.live import workbench_socket
from gateway.live import CLOSE_FELL_BEHIND, CLOSE_RELOAD, DEFAULT_BACKLOG_BYTES, LiveHub
from gateway.relay import MAX_REPLAY, NatsRelay
from gateway.settings import GatewaySettings
from inference_service.domain.workers import announced, state_changed
from workbench.datasets.v1 import datasets_pb2 as ds
from workbench.inference.v1 import inference_pb2 as inf

TOKEN = "live-resume-token-0123456789abcdef"


def connect(url: str) -> Any:
    """A socket to the gateway as an API client opens it: the bearer token in a header."""
    return connect_socket(url, additional_headers={"Authorization": f"Bearer {TOKEN}"})


AT = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)
Meanwhile = Callable[[], Awaitable[None]]


class Scripted(JetStreamEventStore):
    """The real event log. While `flowing` is clear, following holds each event back (the relay lags);
    once `meanwhile` is set, the next replay runs it right after its first event."""

    def __init__(self, nc: NatsClient) -> None:
        super().__init__(nc)
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.meanwhile: Meanwhile | None = None

    async def follow_raw(self, subjects: str | Sequence[str], start: int | None = 1) -> AsyncGenerator[RawEvent, None]:
        inner = super().follow_raw(subjects, start)
        try:
            async for raw in inner:
                await self.flowing.wait()
                yield raw
        finally:
            await inner.aclose()

    async def replay_raw(self, subjects: str | Sequence[str], start: int = 1) -> AsyncGenerator[RawEvent, None]:
        inner = super().replay_raw(subjects, start)
        try:
            async for raw in inner:
                yield raw
                if self.meanwhile is not None:
                    meanwhile, self.meanwhile = self.meanwhile, None
                    await meanwhile()
        finally:
            await inner.aclose()


class InLoopServer(uvicorn.Server):
    """uvicorn on the test's loop, leaving the test runner's signal handlers alone."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class Gateway:
    port: int
    hub: LiveHub
    relay: NatsRelay
    events: Scripted
    following: asyncio.Task[None] | None = None

    def url(self, since: int | None = None) -> str:
        query = f"?since={since}" if since is not None else ""
        return f"ws://127.0.0.1:{self.port}/ws/workbench{query}"

    async def follow(self) -> None:
        """Starts the relay, and waits until it follows the stream."""
        self.following = asyncio.create_task(self.relay.follow_events(self.events))
        async with asyncio.timeout(10):
            while self.relay.position is None:
                assert not self.following.done(), self.following
                await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def live_gateway(
    fresh_nats: NatsServer,
    max_replay: int = MAX_REPLAY,
    follow: bool = True,
    backlog_bytes: int = DEFAULT_BACKLOG_BYTES,
) -> AsyncIterator[Gateway]:
    """The gateway's socket, hub and relay on a NATS connection of their own; with `follow`, once the
    relay follows the stream."""
    nc = await nats.connect(fresh_nats.url)
    events = Scripted(nc)
    hub = LiveHub(backlog_bytes=backlog_bytes)
    relay = NatsRelay(fresh_nats.url, events.stream, hub, first_backoff_s=0.01, max_replay=max_replay)
    settings = GatewaySettings(api_token=TOKEN, nats_url=fresh_nats.url)

    async def no_users() -> InMemoryEventStore:
        return InMemoryEventStore()

    access = {"access": AccessBook(no_users, TOKEN, "admin"), "sessions": SessionSigner.from_secret(TOKEN, 3600)}
    app = Litestar(
        route_handlers=[workbench_socket],
        state=State(access),
        dependencies={
            "settings": Provide(lambda: settings, sync_to_thread=False),
            "hub": Provide(lambda: hub, sync_to_thread=False),
            "relay": Provide(lambda: relay, sync_to_thread=False),
        },
    )
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    server = InLoopServer(config)
    serving = asyncio.create_task(server.serve())
    gateway = Gateway(port, hub, relay, events)
    try:
        async with asyncio.timeout(10):
            while not server.started:
                assert not serving.done(), serving
                await asyncio.sleep(0.01)
        if follow:
            await gateway.follow()
        yield gateway
    finally:
        server.should_exit = True
        await serving
        if gateway.following is not None:
            gateway.following.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await gateway.following
        await nc.close()


def result(record_id: str, output_text: str | None = None) -> inf.ResultRecorded:
    return inf.ResultRecorded(
        run_id="run-1",
        dataset_id="ds-1",
        model_id="tiny-a",
        record_id=record_id,
        output_text=f"answer {record_id}" if output_text is None else output_text,
    )


async def record(stream_log: JetStreamEventStore, record_id: str, output_text: str | None = None) -> int:
    """Appends a result; its stream sequence."""
    event = NewEvent("wb.results.run-1", result(record_id, output_text), msg_id=f"result:run-1:{record_id}")
    return await stream_log.append(event)


async def next_frame(ws: ClientConnection, wait_s: float = 5) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), wait_s))
    return frame


async def frames_through(ws: ClientConnection, last_seq: int) -> list[dict[str, Any]]:
    """Every frame up to the one with sequence `last_seq`."""
    frames: list[dict[str, Any]] = []
    while not frames or frames[-1].get("seq") != last_seq:
        try:
            frames.append(await next_frame(ws))
        except TimeoutError:
            raise AssertionError(f"no frame with seq {last_seq} came; only {frames}") from None
    return frames


async def nothing_more(ws: ClientConnection) -> None:
    """No frame follows (a duplicate would, soon after the others)."""
    try:
        extra = await next_frame(ws, wait_s=0.3)
    except TimeoutError:
        return
    raise AssertionError(f"an unexpected frame: {extra}")


def results(frames: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return [(f["result"]["record_id"], f["seq"]) for f in frames if f["type"] == "result"]


async def closed_with(ws: ClientConnection) -> int | None:
    """The close code of a socket the gateway closes before any frame."""
    with pytest.raises(ConnectionClosed) as closed:
        await next_frame(ws)
    return closed.value.rcvd.code if closed.value.rcvd else None


async def test_without_since_the_hello_asks_for_a_refetch_and_every_stored_event_frame_carries_its_sequence(
    fresh_nats: NatsServer, stream_log: JetStreamEventStore
) -> None:
    await record(stream_log, "r1")
    before = await stream_log.append(
        NewEvent("wb.datasets.ds-1", ds.DatasetRegistered(dataset_id="ds-1", name="a.jsonl"))
    )

    async with live_gateway(fresh_nats) as gateway, connect(gateway.url()) as ws:
        assert await next_frame(ws) == {"type": "hello", "resumed": False, "seq": before}

        r2 = await record(stream_log, "r2")
        started = await stream_log.append(NewEvent("wb.runs.run-1", inf.RunStarted(run_id="run-1", worker="w1")))
        result_frame, run_frame = await next_frame(ws), await next_frame(ws)
        await nothing_more(ws)

    assert (result_frame["type"], result_frame["result"]["record_id"], result_frame["seq"]) == ("result", "r2", r2)
    assert (run_frame["type"], run_frame["event"], run_frame["seq"]) == ("run", "RunStarted", started)
    assert before < r2 < started


async def test_a_page_that_reconnects_with_since_gets_exactly_the_frames_it_missed_then_the_live_ones(
    fresh_nats: NatsServer, stream_log: JetStreamEventStore
) -> None:
    async with live_gateway(fresh_nats) as gateway:
        async with connect(gateway.url()) as ws:
            assert (await next_frame(ws))["resumed"] is False
            r1, r2 = await record(stream_log, "r1"), await record(stream_log, "r2")
            assert results(await frames_through(ws, r2)) == [("r1", r1), ("r2", r2)]

        # Disconnected: results, a run event and an event the socket does not relay go by.
        r3, r4 = await record(stream_log, "r3"), await record(stream_log, "r4")
        started = await stream_log.append(NewEvent("wb.runs.run-1", inf.RunStarted(run_id="run-1", worker="w1")))
        await stream_log.append(NewEvent("wb.datasets.ds-2", ds.DatasetRegistered(dataset_id="ds-2", name="b.jsonl")))
        r5 = await record(stream_log, "r5")
        during: list[int] = []

        async def record_during_the_replay() -> None:
            during.extend([await record(stream_log, "r6"), await record(stream_log, "r7")])

        gateway.events.meanwhile = record_during_the_replay
        async with connect(gateway.url(since=r2)) as ws:
            hello = await next_frame(ws)
            replayed_then_live = await frames_through(ws, r5)
            assert len(during) == 2, "the replay never reached its second event"
            r6, r7 = during
            replayed_then_live += await frames_through(ws, r7)
            r8 = await record(stream_log, "r8")
            later = await frames_through(ws, r8)
            await nothing_more(ws)

    assert hello == {"type": "hello", "resumed": True, "seq": r5}  # the relay had followed through r5
    assert [(f["type"], f.get("event"), f["seq"]) for f in replayed_then_live] == [
        ("result", None, r3),
        ("result", None, r4),
        ("run", "RunStarted", started),
        ("result", None, r5),
        ("result", None, r6),  # appended while the replay ran: once, in order
        ("result", None, r7),
    ]
    assert results(replayed_then_live + later) == [
        ("r3", r3),
        ("r4", r4),
        ("r5", r5),
        ("r6", r6),
        ("r7", r7),
        ("r8", r8),
    ]


async def test_a_page_resuming_from_a_gateway_that_has_just_started_waits_for_its_relay(
    fresh_nats: NatsServer, stream_log: JetStreamEventStore
) -> None:
    r1, r2 = await record(stream_log, "r1"), await record(stream_log, "r2")  # the page had r1 from the gateway before

    async with live_gateway(fresh_nats, follow=False) as gateway, connect(gateway.url(since=r1)) as ws:
        await gateway.follow()
        assert await next_frame(ws) == {"type": "hello", "resumed": True, "seq": r2}
        assert results(await frames_through(ws, r2)) == [("r2", r2)]
        await nothing_more(ws)


async def test_a_page_resuming_from_a_gateway_whose_relay_lags_gets_each_missed_event_once(
    fresh_nats: NatsServer, stream_log: JetStreamEventStore
) -> None:
    async with live_gateway(fresh_nats) as gateway:
        async with connect(gateway.url()) as ws:
            await next_frame(ws)  # hello
            r1, r2 = await record(stream_log, "r1"), await record(stream_log, "r2")
            await frames_through(ws, r2)  # relayed through r2; the page will say it applied only r1
        gateway.events.flowing.clear()  # the relay falls behind: r3 and r4 are in the stream, not relayed yet
        r3, r4 = await record(stream_log, "r3"), await record(stream_log, "r4")

        async with connect(gateway.url(since=r1)) as ws:
            hello = await next_frame(ws)
            replayed = await frames_through(ws, r2)
            gateway.events.flowing.set()  # the relay catches up: r3 and r4 come live
            live = await frames_through(ws, r4)
            await nothing_more(ws)

    assert hello == {"type": "hello", "resumed": True, "seq": r2}
    assert results(replayed + live) == [("r2", r2), ("r3", r3), ("r4", r4)]


async def test_a_page_ahead_of_this_gateways_relay_gets_no_frame_it_already_has(
    fresh_nats: NatsServer, stream_log: JetStreamEventStore
) -> None:
    async with live_gateway(fresh_nats) as gateway:
        async with connect(gateway.url()) as ws:
            await next_frame(ws)  # hello
            r1 = await record(stream_log, "r1")
            await frames_through(ws, r1)
        gateway.events.flowing.clear()  # this relay falls behind; the page was served by a faster gateway
        r2, r3 = await record(stream_log, "r2"), await record(stream_log, "r3")

        async with connect(gateway.url(since=r2)) as ws:
            assert await next_frame(ws) == {"type": "hello", "resumed": True, "seq": r1}
            gateway.events.flowing.set()
            assert results(await frames_through(ws, r3)) == [("r3", r3)]  # r2 is skipped, the page has it
            await nothing_more(ws)


async def test_a_page_whose_missed_events_are_gone_is_told_to_reload(
    fresh_nats: NatsServer, stream_log: JetStreamEventStore
) -> None:
    r1 = await record(stream_log, "r1")
    await record(stream_log, "r2")
    r3 = await record(stream_log, "r3")
    await stream_log.js.purge_stream(stream_log.stream)  # r2 and r3 can no longer be replayed

    async with live_gateway(fresh_nats) as gateway:
        async with connect(gateway.url(since=r1)) as ws:
            assert await closed_with(ws) == CLOSE_RELOAD
        async with connect(gateway.url(since=r3 + 5)) as ws:  # past the stream's end: it was recreated
            assert await closed_with(ws) == CLOSE_RELOAD
        async with connect(gateway.url(since=r3)) as ws:  # nothing was missed: resumes
            assert await next_frame(ws) == {"type": "hello", "resumed": True, "seq": r3}


async def test_a_page_that_missed_more_than_the_replay_limit_is_told_to_reload(
    fresh_nats: NatsServer, stream_log: JetStreamEventStore
) -> None:
    async with live_gateway(fresh_nats, max_replay=3) as gateway:
        async with connect(gateway.url()) as ws:
            start = (await next_frame(ws))["seq"]
        sequences = [await record(stream_log, f"r{n}") for n in range(1, 5)]

        async with connect(gateway.url(since=start)) as ws:  # four missed
            assert await closed_with(ws) == CLOSE_RELOAD
        async with connect(gateway.url(since=sequences[0])) as ws:  # three missed: within the limit
            assert (await next_frame(ws))["resumed"] is True
            replayed = await frames_through(ws, sequences[-1])
            await nothing_more(ws)

    assert results(replayed) == [("r2", sequences[1]), ("r3", sequences[2]), ("r4", sequences[3])]


async def test_worker_events_become_worker_frames(fresh_nats: NatsServer, stream_log: JetStreamEventStore) -> None:
    async with live_gateway(fresh_nats) as gateway, connect(gateway.url()) as ws:
        await next_frame(ws)  # hello
        came = await stream_log.append(announced("gpu-1", ["tiny-a", "tiny-b"], AT))
        loading = await stream_log.append(state_changed("gpu-1", "tiny-a", inf.WORKER_STATE_LOADING, AT))
        failed = await stream_log.append(
            state_changed("gpu-1", "tiny-b", inf.WORKER_STATE_GONE, AT, "could not load: OOM")
        )
        stopped = await stream_log.append(state_changed("gpu-1", "", inf.WORKER_STATE_GONE, AT, "stopped"))
        frames = await frames_through(ws, stopped)

    at = "2026-11-27T09:30:00+00:00"
    changed = {"type": "worker", "event": "WorkerStateChanged", "worker": "gpu-1", "at": at}
    assert frames == [
        {
            "type": "worker",
            "event": "WorkerAnnounced",
            "worker": "gpu-1",
            "model_ids": ["tiny-a", "tiny-b"],
            "state": "ready",
            "detail": "",
            "at": at,
            "seq": came,
        },
        {**changed, "model_id": "tiny-a", "state": "loading", "detail": "", "seq": loading},
        {**changed, "model_id": "tiny-b", "state": "gone", "detail": "could not load: OOM", "seq": failed},
        {**changed, "model_id": "", "state": "gone", "detail": "stopped", "seq": stopped},
    ]


@contextlib.asynccontextmanager
async def page_that_stops_reading(url: str) -> AsyncIterator[ClientConnection]:
    """A socket whose reader takes nothing from the network until the test calls recv(): a frozen tab.

    Its client holds one message and its kernel a few KB, so the gateway's own buffers fill soon
    (uncompressed, so that each frame takes its size on the wire).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    host, port = url.split("/")[2].split(":")
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with connect_socket(url, additional_headers=headers, sock=sock, max_queue=1, compression=None) as ws:
        yield ws


async def test_a_page_that_stops_reading_is_closed_to_resume_while_another_gets_every_frame(
    fresh_nats: NatsServer, stream_log: JetStreamEventStore
) -> None:
    long_answer = "x" * 16_000  # a frame of about 16 KB
    recorded: list[tuple[str, int]] = []
    read: list[dict[str, Any]] = []
    woke: list[dict[str, Any]] = []

    async with live_gateway(fresh_nats, backlog_bytes=256 * 1024) as gateway:
        async with connect(gateway.url()) as reader, page_that_stops_reading(gateway.url()) as frozen:
            assert (await next_frame(reader))["type"] == (await next_frame(frozen))["type"] == "hello"

            # Results are recorded one at a time and the reader has each before the next is recorded,
            # while the frozen page's frames pile up until the gateway gives up on it.
            async def record_one() -> None:
                record_id = f"r{len(recorded) + 1}"
                recorded.append((record_id, await record(stream_log, record_id, long_answer)))
                read.extend(await frames_through(reader, recorded[-1][1]))

            while not any(client.overflowed for client in gateway.hub.clients):
                assert len(recorded) < 2_000, "the page that stopped reading was never closed"
                await record_one()
            for _ in range(3):  # the reader carries on
                await record_one()

            # The frozen page wakes up: the frames up to where it fell behind, then the close.
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    woke.append(await next_frame(frozen))
            assert closed.value.rcvd is not None and closed.value.rcvd.code == CLOSE_FELL_BEHIND

        had = results(woke)
        # It resumes after the last frame it has: the rest comes, once, without a refetch.
        async with connect(gateway.url(since=had[-1][1])) as ws:
            hello = await next_frame(ws)
            rest = results(await frames_through(ws, recorded[-1][1]))
            await nothing_more(ws)

    assert results(read) == recorded  # every frame, in order, none twice
    assert had == recorded[: len(had)] and 0 < len(had) < len(recorded)
    assert hello["resumed"] is True
    assert had + rest == recorded
