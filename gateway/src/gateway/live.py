"""In-process fan-out of live frames to every open WebSocket, with a bounded backlog per client.

One NATS subscription per gateway process feeds the hub (see relay.py); each socket drains its own
queue, so a browser that reads slowly (or not at all) holds up nobody else. Its backlog is bounded
in frames and in bytes (WB_LIVE_BACKLOG_BYTES). A slow browser loses stale progress frames first (a
newer snapshot of the same run replaces an older one); results and run events are never dropped one
by one: when they alone overflow the backlog the queue is emptied and the socket is closed with
CLOSE_FELL_BEHIND. The page then reconnects with `since`, and the frames it missed are replayed from
the stream at its own pace, so falling behind costs no refetch.

The relay closes every socket with CLOSE_RELOAD when it has missed stored events it cannot replay
(LiveHub.reload_all): only then, or when a replay is impossible, does a page refetch what it shows.

Frames made from stored events carry their stream sequence. The hub knows the sequence it has
relayed through, so a client that joins gets every stored-event frame after `ClientQueue.start`;
frames at or below what the browser already has (`sent_through`) are skipped, never sent twice.
"""

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_BACKLOG = 1000  # frames
DEFAULT_BACKLOG_BYTES = 4 * 1024 * 1024  # see GatewaySettings.live_backlog_bytes
# A frame costs its text and about this much besides (the Frame, the deque slot), so that thousands
# of tiny frames count too.
FRAME_OVERHEAD_BYTES = 100
# Application close codes (4000-4999). 4401 mirrors HTTP 401.
CLOSE_RELOAD = 4000  # frames were lost that no replay brings back: refetch what the page shows
CLOSE_FELL_BEHIND = 4001  # the page read too slowly: reconnect with ?since=<last seq> (no refetch)
CLOSE_UNAUTHORIZED = 4401


@dataclass(frozen=True, slots=True)
class Closing:
    """How a socket whose queue was closed says goodbye."""

    code: int
    reason: str


FELL_BEHIND = Closing(CLOSE_FELL_BEHIND, "fell behind: resume with since")
RELOAD = Closing(CLOSE_RELOAD, "live updates were interrupted: reload the results")


@dataclass(frozen=True, slots=True)
class Frame:
    """An encoded JSON text frame; progress frames of the same run supersede each other."""

    text: str
    progress_of: str | None = None  # the run id, for progress frames only
    seq: int | None = None  # the stream sequence of the stored event it was made from


def frame_bytes(frame: Frame) -> int:
    """What a waiting frame counts against the backlog (its JSON text is almost all ASCII)."""
    return len(frame.text) + FRAME_OVERHEAD_BYTES


class ClientQueue:
    """The frames waiting to be sent to one WebSocket."""

    def __init__(
        self,
        limit: int = DEFAULT_BACKLOG,
        start: int | None = None,
        sent_through: int = 0,
        limit_bytes: int = DEFAULT_BACKLOG_BYTES,
    ) -> None:
        self.limit = limit
        self.limit_bytes = limit_bytes
        self.start = start  # the hub's sequence when this client joined: every stored frame after it comes here
        self.sent_through = sent_through  # the browser has every stored-event frame up to this sequence
        self.overflowed = False  # closed because the browser fell behind: it resumes (CLOSE_FELL_BEHIND)
        self.must_reload = False  # closed because the browser missed frames: close the socket with CLOSE_RELOAD
        self.closed = False
        self.bytes = 0  # what the waiting frames count (frame_bytes)
        self._frames: deque[Frame] = deque()
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def closing(self) -> Closing | None:
        """How the socket closes once the queue is closed: None when the browser went away (or not closed)."""
        if self.overflowed:
            return FELL_BEHIND
        if self.must_reload:
            return RELOAD
        return None

    def put(self, frame: Frame) -> None:
        if self.closed or self._already_sent(frame):
            return
        if frame.progress_of is not None:
            self._drop_progress(lambda f: f.progress_of == frame.progress_of)
        size = frame_bytes(frame)
        while self._frames and self._full(size):
            if not self._drop_progress(lambda f: f.progress_of is not None):
                if frame.progress_of is not None:
                    return  # a full backlog of results: this snapshot is already stale
                self.fell_behind()
                return
        # An empty queue takes any frame, however big: one large result must not drop every page.
        self._frames.append(frame)
        self.bytes += size
        self._ready.set()

    def fell_behind(self) -> None:
        """Closes the queue because the browser reads too slowly: the socket tells it to resume."""
        if not self.closed:
            self.overflowed = True
        self.close()

    def close_for_reload(self) -> None:
        """Closes the queue because frames were lost: the socket tells the browser to refetch."""
        if not self.closed:
            self.must_reload = True
        self.close()

    def close(self) -> None:
        self.closed = True
        self._frames.clear()
        self.bytes = 0
        self._ready.set()

    def mark_sent(self, seq: int | None) -> None:
        """The browser now has the stored-event frame of this sequence (e.g. replayed): none up to it is sent again."""
        if seq is not None:
            self.sent_through = max(self.sent_through, seq)

    async def get(self) -> str | None:
        """The next frame's text; None once the queue is closed (see `must_reload` and `overflowed` for why)."""
        while True:
            while not self._frames:
                if self.closed:
                    return None
                self._ready.clear()
                await self._ready.wait()
            frame = self._frames.popleft()
            self.bytes -= frame_bytes(frame)
            if not self._already_sent(frame):
                self.mark_sent(frame.seq)
                return frame.text

    def _already_sent(self, frame: Frame) -> bool:
        return frame.seq is not None and frame.seq <= self.sent_through

    def _full(self, adding: int) -> bool:
        return len(self._frames) >= self.limit or self.bytes + adding > self.limit_bytes

    def _drop_progress(self, matches: Callable[[Frame], bool]) -> bool:
        """Removes the oldest frame that matches; True when one was removed."""
        for i, frame in enumerate(self._frames):
            if matches(frame):
                del self._frames[i]
                self.bytes -= frame_bytes(frame)
                return True
        return False


class LiveHub:
    """Every open socket's queue; broadcast() never blocks, so one slow browser delays nobody."""

    def __init__(self, backlog: int = DEFAULT_BACKLOG, backlog_bytes: int = DEFAULT_BACKLOG_BYTES) -> None:
        self.backlog = backlog
        self.backlog_bytes = backlog_bytes
        self.clients: set[ClientQueue] = set()
        # The stream sequence through which stored events have been broadcast (None until the relay
        # follows the stream): every stored-event frame broadcast later is after it.
        self.sequence: int | None = None
        self._following = asyncio.Event()

    def relayed(self, sequence: int) -> None:
        """The relay has broadcast the stored events through `sequence` (or follows the stream from after it)."""
        self.sequence = sequence
        self._following.set()

    async def following(self, wait_s: float) -> bool:
        """Whether the relay follows the stream, waiting up to `wait_s` for it (e.g. a gateway just started)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait_s):
                await self._following.wait()
        return self._following.is_set()

    def subscribe(self, since: int | None = None) -> ClientQueue:
        """A new client's queue; `since`: the browser already has the stored-event frames up to it."""
        client = ClientQueue(self.backlog, start=self.sequence, sent_through=since or 0, limit_bytes=self.backlog_bytes)
        self.clients.add(client)
        return client

    def unsubscribe(self, client: ClientQueue) -> None:
        self.clients.discard(client)
        client.close()

    def reload_all(self) -> None:
        """Closes every socket with CLOSE_RELOAD: their pages may lack events that no frame will bring."""
        for client in list(self.clients):
            client.close_for_reload()

    def broadcast(self, frame: Frame) -> None:
        for client in list(self.clients):
            client.put(frame)
