"""What watches a fault run from outside: a follower of its results, a user making marks through
the gateway, and a page's WebSocket that resumes with ?since=<last seq> (see scenario.py)."""

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from google.protobuf.message import DecodeError
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from eventlog import EventLogError, JetStreamEventStore, RawEvent
from gateway.live import CLOSE_RELOAD
from gateway.relay import EVENT_SUBJECTS, event_frame

KINDS_IN_TURN = ("golden", "wrong", "fixed")
MARK_EVERY_S = 0.25
MARK_TIMEOUT_S = 10.0  # a mark not answered by then counts as not acknowledged
RECONNECT_EVERY_S = 0.2
CLOSE_TIMEOUT_S = 5.0  # closing a NATS connection drains it: bounded, as the server may be frozen or gone


async def close_quietly(events: JetStreamEventStore) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(events.close(), CLOSE_TIMEOUT_S)


class ResultWatch:
    """Follows the runs' results subjects: which (record, model) pairs have a stored result, in order."""

    def __init__(self, nats_url: str, run_ids: Sequence[str]) -> None:
        self.nats_url = nats_url
        self.subjects = [f"wb.results.{run_id}" for run_id in run_ids]
        self.seen: list[tuple[str, str]] = []
        self._more = asyncio.Event()

    async def run(self) -> None:
        """Follows until cancelled; when NATS goes away (a fault), follows again after the last one seen."""
        after = 0
        while True:
            events: JetStreamEventStore | None = None
            try:
                events = await JetStreamEventStore.connect(self.nats_url)
                async for stored in events.follow(self.subjects, start=after + 1):
                    result: Any = stored.event
                    self.seen.append((result.record_id, result.model_id))
                    after = stored.sequence
                    self._more.set()
            except Exception:  # NATS killed or frozen under it
                await asyncio.sleep(RECONNECT_EVERY_S)
            finally:
                if events is not None:
                    await close_quietly(events)

    async def stored(self, count: int) -> None:
        """Returns once `count` results are stored."""
        while len(self.seen) < count:
            self._more.clear()
            await self._more.wait()


@dataclass(frozen=True)
class Mark:
    record_id: str
    model_id: str
    kind: str
    note: str

    def body(self, dataset_id: str) -> dict[str, str]:
        body = {"kind": self.kind, "dataset_id": dataset_id, "record_id": self.record_id, "model_id": self.model_id}
        body["note"] = self.note
        if self.kind == "fixed":
            body["fixed_text"] = f"the answer {self.record_id} should have been"
        return body


class Annotator:
    """Marks answers as they come in, one (record, model) pair once each, through the gateway; keeps
    the marks answered 2xx. Failures (a service or the gateway away) are what a user sees: not kept."""

    def __init__(self, api: httpx.AsyncClient, dataset_id: str, results: ResultWatch) -> None:
        self.api = api
        self.dataset_id = dataset_id
        self.results = results
        self.acknowledged: list[Mark] = []
        self.made = 0
        self._more = asyncio.Event()

    async def acknowledged_count(self, count: int) -> None:
        """Returns once `count` marks have been acknowledged."""
        while len(self.acknowledged) < count:
            self._more.clear()
            await self._more.wait()

    async def run(self) -> None:
        marked: set[tuple[str, str]] = set()
        while True:  # until cancelled, a mark every MARK_EVERY_S while answers come in
            pair = next((pair for pair in self.results.seen if pair not in marked), None)
            if pair is None:
                await asyncio.sleep(MARK_EVERY_S)
                continue
            marked.add(pair)
            mark = Mark(*pair, KINDS_IN_TURN[self.made % len(KINDS_IN_TURN)], f"fault mark {self.made}")
            self.made += 1
            try:
                body = mark.body(self.dataset_id)
                reply = await self.api.post("/admin/annotations", json=body, timeout=MARK_TIMEOUT_S)
            except httpx.HTTPError:
                pass
            else:
                if reply.is_success:
                    self.acknowledged.append(mark)
                    self._more.set()
            await asyncio.sleep(MARK_EVERY_S)


def makes_frame(raw: RawEvent) -> bool:
    """Whether the gateway relays this stored event to pages (as the relay does, skipping what it cannot read)."""
    try:
        stored = raw.decode()
    except (EventLogError, DecodeError):
        return False
    return stored is not None and event_frame(stored.event, raw.sequence) is not None


class SocketWatch:
    """A page's live socket: the stored-event frames it got, reconnecting with ?since=<last seq>
    whenever the socket closes or the gateway is away; a CLOSE_RELOAD starts it afresh (no since)."""

    def __init__(self, gateway_port: int, token: str) -> None:
        self.url = f"ws://127.0.0.1:{gateway_port}/ws/workbench"
        self.headers = {"Authorization": f"Bearer {token}"}
        self.start: int | None = None  # the first hello's sequence: every stored-event frame after it is due
        self.last: int | None = None
        self.sequences: list[int] = []
        self.reloads = 0
        self._hello = asyncio.Event()
        self._more = asyncio.Event()

    async def following(self, within_s: float = 30.0) -> None:
        """Returns once the socket has had its hello with a stream sequence."""
        await asyncio.wait_for(self._hello.wait(), within_s)

    async def run(self) -> None:
        while True:
            url = self.url if self.last is None else f"{self.url}?since={self.last}"
            try:
                async with connect(url, additional_headers=self.headers, open_timeout=5, max_size=None) as socket:
                    async for text in socket:
                        if not self._take(json.loads(text)):
                            break  # a gateway that does not follow the stream yet: ask again
            except ConnectionClosed as closed:
                if closed.rcvd is not None and closed.rcvd.code == CLOSE_RELOAD:
                    self.reloads += 1
                    self.last = None
            except (OSError, InvalidHandshake, TimeoutError):
                pass  # the gateway is away: try again
            await asyncio.sleep(RECONNECT_EVERY_S)

    def _take(self, frame: dict[str, Any]) -> bool:
        """Notes a frame's sequence; False for a hello without one (no point to resume from)."""
        seq = frame.get("seq")
        if frame.get("type") == "hello":
            if seq is None:
                return False
            if self.start is None:
                self.start = seq
                self._hello.set()
            if self.last is None:
                self.last = seq
            return True
        if seq is not None:
            self.sequences.append(seq)
            self.last = max(seq, self.last or 0)
            self._more.set()
        return True

    async def compare_with_log(self, nats_url: str, within_s: float = 30.0) -> tuple[list[int], list[int]]:
        """The stored-event frames due since the first hello that never came, and those that came twice.

        Due: every event on the relayed subjects after the first hello that makes a frame, up to the
        stream's end now (waited for up to within_s).
        """
        assert self.start is not None, "the socket never had its hello"
        events = await JetStreamEventStore.connect(nats_url)
        try:
            relayed = events.replay_raw(list(EVENT_SUBJECTS), self.start + 1)
            due = [raw.sequence async for raw in relayed if makes_frame(raw)]
        finally:
            await close_quietly(events)
        if due:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._reached(due[-1]), within_s)
        counts = Counter(self.sequences)
        missed = [seq for seq in due if seq not in counts]
        twice = sorted(seq for seq, count in counts.items() if count > 1)
        return missed, twice

    async def _reached(self, sequence: int) -> None:
        while (self.last or 0) < sequence:
            self._more.clear()
            await self._more.wait()
