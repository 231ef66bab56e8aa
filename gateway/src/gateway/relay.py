"""One NATS connection per gateway process, relaying live events to the hub as JSON frames.

Progress snapshots come from core NATS (wb.progress.>, not stored); results, run, annotation and
worker events from the event stream, from its end when the relay starts. Each frame made from a
stored event carries the event's stream sequence ("seq").

An open socket must not miss a stored event, or its grid silently lacks results: the relay remembers
the stream sequence of the last event it saw and, when following fails, resumes right after it.
Where that is impossible (the events were removed from the stream, the stream was recreated, or the
relay never had a position) every socket is closed with CLOSE_RELOAD, so each page refetches.

A page that reconnects names the last sequence it applied; `replay` reads the frames it missed
from the stream (at most `max_replay` of them), up to where the hub's live frames take over.
"""

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
import nats
from google.protobuf.message import DecodeError, Message
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from eventlog import EventLogError, JetStreamEventStore, RawEvent, StoredEvent, from_timestamp, nats_servers
from gateway.live import Frame, LiveHub
from gateway.views import annotation_kind_word, message_fields, progress_view, result_view, worker_state_word
from workbench.annotations.v1 import annotations_pb2 as ann
from workbench.inference.v1 import inference_pb2 as inf

log = logging.getLogger(__name__)

PROGRESS_SUBJECT = "wb.progress.>"
EVENT_SUBJECTS = ("wb.results.>", "wb.runs.>", "wb.annotations.>", "wb.workers.>")
ANNOTATION_EVENTS = (ann.AnnotationRecorded, ann.AnnotationCleared)
RUN_EVENTS = (inf.RunRequested, inf.RunStarted, inf.RunCompleted, inf.RunFailed, inf.RunCancelled)
FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 30.0
# A page that missed more stored events than this refetches instead: one page of HTTP is cheaper
# than thousands of frames, and the replay stays bounded in memory and time.
MAX_REPLAY = 5000


class CannotResume(Exception):
    """The frames a page missed cannot be replayed: it must refetch (its socket closes with CLOSE_RELOAD)."""


def _encode(payload: dict[str, Any]) -> str:
    return msgspec.json.encode(payload).decode()


def progress_frame(progress: inf.RunProgress) -> Frame:
    return Frame(_encode({"type": "progress", "progress": progress_view(progress)}), progress_of=progress.run_id)


def hello_frame(resumed: bool, sequence: int | None) -> Frame:
    """A socket's first frame: whether the frames the page missed follow (else it refetches), and the
    stream sequence the live frames start after (None while the gateway does not follow the stream)."""
    return Frame(_encode({"type": "hello", "resumed": resumed, "seq": sequence}))


def event_frame(event: Message, sequence: int) -> Frame | None:
    """The frame for a stored event the browser cares about, with its stream sequence; None for any other event.

    An annotation frame also carries the record's new version (the same sequence): what the next
    mark on that record names as expected_version.
    """
    payload: dict[str, Any]
    if isinstance(event, inf.ResultRecorded):
        payload = {"type": "result", "result": result_view(event)}
    elif isinstance(event, RUN_EVENTS):
        payload = {"type": "run", "event": event.DESCRIPTOR.name, **message_fields(event)}
    elif isinstance(event, ANNOTATION_EVENTS):
        fields = message_fields(event)
        if isinstance(event, ann.AnnotationRecorded):
            fields["kind"] = annotation_kind_word(event.kind)
        payload = {"type": "annotation", "event": event.DESCRIPTOR.name, **fields, "version": sequence}
    elif isinstance(event, inf.WorkerAnnounced | inf.WorkerStateChanged):
        payload = worker_payload(event)
    else:
        return None
    return Frame(_encode({**payload, "seq": sequence}), seq=sequence)


def worker_payload(event: inf.WorkerAnnounced | inf.WorkerStateChanged) -> dict[str, Any]:
    """A worker's new state, named as /admin/models names it.

    An announced worker serves its models, each "ready" (as the inference read model folds the
    event, forgetting what the worker served before); a state change without a model id applies
    to every model of the worker ("gone" when it stops).
    """
    if isinstance(event, inf.WorkerAnnounced):
        models: dict[str, Any] = {"model_ids": list(event.model_ids)}
        state, detail = inf.WORKER_STATE_READY, ""
    else:
        models = {"model_id": event.model_id}
        state, detail = event.state, event.detail
    at = from_timestamp(event.at)
    return {
        "type": "worker",
        "event": event.DESCRIPTOR.name,
        "worker": event.worker,
        **models,
        "state": worker_state_word(state),
        "detail": detail,
        "at": at.isoformat() if at else None,
    }


@dataclass(frozen=True, slots=True)
class Position:
    """Where the relay is in the stream: the last sequence it saw, in the stream created then."""

    created: datetime | None
    sequence: int


def _decoded(raw: RawEvent) -> StoredEvent | None:
    try:
        return raw.decode()
    except (EventLogError, DecodeError) as error:
        log.debug("skipping an event the gateway cannot read: %s", error)
        return None


class Replay:
    """The frames of the events a reconnecting page missed, up to `until`; close() it when done
    (it holds a consumer on the stream)."""

    def __init__(
        self, until: int, head: RawEvent | None = None, rest: AsyncGenerator[RawEvent, None] | None = None
    ) -> None:
        self.until = until
        self._head = head
        self._rest = rest

    async def frames(self) -> AsyncGenerator[Frame, None]:
        """In stream order; events after `until` are left to the live frames. Raises CannotResume when reading fails."""
        raw, self._head = self._head, None
        while raw is not None and raw.sequence <= self.until:
            stored = _decoded(raw)
            frame = event_frame(stored.event, stored.sequence) if stored is not None else None
            if frame is not None:
                yield frame
            try:
                raw = await anext(self._rest, None) if self._rest is not None else None
            except Exception as error:
                raise CannotResume(f"replaying the event stream failed ({type(error).__name__})") from None

    async def close(self) -> None:
        if self._rest is not None:
            await self._rest.aclose()


class NatsRelay:
    """Feeds the hub from NATS until cancelled; waits for NATS and the stream when they are not up yet."""

    def __init__(
        self,
        url: str,
        stream: str,
        hub: LiveHub,
        first_backoff_s: float = FIRST_BACKOFF_S,
        changed: Callable[[str], None] | None = None,
        max_replay: int = MAX_REPLAY,
        user: str = "",
        password: str = "",
    ) -> None:
        self.url = url
        self.user = user
        self.password = password
        self.stream = stream
        self.hub = hub
        self.changed = changed  # told the dataset of each result and mark (the live counts)
        self.first_backoff_s = first_backoff_s
        self.max_replay = max_replay
        self.nc: NatsClient | None = None
        self.events: JetStreamEventStore | None = None  # the store followed, and replayed for reconnecting pages
        self.position: Position | None = None

    @property
    def connected(self) -> bool:
        return self.nc is not None and self.nc.is_connected

    async def run(self) -> None:
        async def quiet(error: Exception) -> None:
            log.debug("NATS: %s", error)

        # Retries forever (also the first connect), so the gateway serves HTTP while NATS starts.
        self.nc = await nats.connect(
            nats_servers(self.url),
            name="wb-gateway",
            max_reconnect_attempts=-1,
            reconnect_time_wait=2,
            error_cb=quiet,
            user=self.user or None,
            password=self.password or None,
        )
        log.info("live updates: connected to NATS at %s", self.url)
        try:
            await self.nc.subscribe(PROGRESS_SUBJECT, cb=self._on_progress)
            await self.follow_events(JetStreamEventStore(self.nc, self.stream))
        finally:
            await self.nc.close()

    async def follow_events(self, events: JetStreamEventStore) -> None:
        """Relays the stream's events, resuming after each failure where it stopped."""
        self.events = events
        backoff = self.first_backoff_s
        while True:
            try:
                start = await self._resume_point(events)
                async for raw in events.follow_raw(list(EVENT_SUBJECTS), start=start):
                    backoff = self.first_backoff_s
                    self._on_event(raw)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # e.g. the stream does not exist yet: the services create it
                log.warning("following %s failed (%s); retrying in %.1f s", self.stream, error, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)

    async def _resume_point(self, events: JetStreamEventStore) -> int:
        """The sequence to follow from: right after the last one seen, or the stream's end (reloading every page)."""
        info = await events.js.stream_info(events.stream)
        first, last = info.state.first_seq, info.state.last_seq
        at = self.position
        if at is not None and at.created == info.created and first <= at.sequence + 1 and at.sequence <= last:
            return at.sequence + 1
        if at is not None:
            log.warning(
                "cannot resume %s after sequence %d (stream now %d..%d): telling every page to reload",
                self.stream,
                at.sequence,
                first,
                last,
            )
        # No position (first start) or a gap that cannot be replayed: pages open now may lack events.
        self.hub.reload_all()
        self.position = Position(info.created, last)
        self.hub.relayed(last)
        return last + 1

    async def replay(self, since: int, until: int | None) -> Replay:
        """The relayed events after `since` through `until` (where the hub's live frames take over).

        Checked before it returns, so a page that cannot resume is told so before its hello: raises
        CannotResume when the gateway does not follow the stream yet, when events after `since` were
        removed or the stream was recreated (it ends before `since`), or when more than `max_replay`
        events were missed. Reading may raise CannotResume too (the stream went away meanwhile).
        """
        events = self.events
        if events is None or until is None:
            raise CannotResume("not following the event stream yet")
        try:
            info = await events.js.stream_info(events.stream)
        except Exception as error:  # NATS or the stream away: nothing to replay from
            raise CannotResume(f"the event stream cannot be read ({type(error).__name__})") from None
        first, last = info.state.first_seq, info.state.last_seq
        if since > last:
            raise CannotResume(f"the event stream ends at {last}, before {since}: it was recreated")
        if since + 1 < first:
            raise CannotResume(f"the events after {since} were removed from the stream")
        if since >= until:
            return Replay(until)
        raws = events.replay_raw(list(EVENT_SUBJECTS), start=since + 1)
        try:
            head = await anext(raws, None)
        except Exception as error:
            await raws.aclose()
            raise CannotResume(f"the event stream cannot be read ({type(error).__name__})") from None
        # pending: the events on these subjects after the first one, when it was delivered.
        if head is not None and head.pending + 1 > self.max_replay:
            await raws.aclose()
            raise CannotResume(f"more than {self.max_replay} events were missed")
        return Replay(until, head, raws)

    def _on_event(self, raw: RawEvent) -> None:
        if self.position is not None:
            self.position = Position(self.position.created, raw.sequence)
            self.hub.relayed(raw.sequence)
        stored = _decoded(raw)
        if stored is None:
            return
        frame = event_frame(stored.event, stored.sequence)
        if frame is not None:
            self.hub.broadcast(frame)
        if self.changed is not None and isinstance(stored.event, (inf.ResultRecorded, *ANNOTATION_EVENTS)):
            self.changed(stored.event.dataset_id)

    async def _on_progress(self, msg: Msg) -> None:
        try:
            progress = inf.RunProgress.FromString(msg.data)
        except DecodeError:
            log.debug("skipping a malformed progress message on %s", msg.subject)
            return
        self.hub.broadcast(progress_frame(progress))
