"""One NATS connection per gateway process, relaying live events to the hub as JSON frames.

Progress snapshots come from core NATS (wb.progress.>, not stored); results and run lifecycle
events from the event stream, from its end when the relay starts (a browser that (re)connects
refetches the results view, so it never needs history from here).

An open socket must not miss a stored event, or its grid silently lacks results: the relay remembers
the stream sequence of the last event it saw and, when following fails, resumes right after it.
Where that is impossible (the events were removed from the stream, the stream was recreated, or the
relay never had a position) every socket is closed with CLOSE_RELOAD, so each page refetches.
"""

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
import nats
from google.protobuf.message import DecodeError, Message
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from eventlog import EventLogError, JetStreamEventStore, RawEvent
from gateway.live import Frame, LiveHub
from gateway.views import annotation_kind_word, message_fields, progress_view, result_view
from workbench.annotations.v1 import annotations_pb2 as ann
from workbench.inference.v1 import inference_pb2 as inf

log = logging.getLogger(__name__)

PROGRESS_SUBJECT = "wb.progress.>"
EVENT_SUBJECTS = ("wb.results.>", "wb.runs.>", "wb.annotations.>")
ANNOTATION_EVENTS = (ann.AnnotationRecorded, ann.AnnotationCleared)
RUN_EVENTS = (inf.RunRequested, inf.RunStarted, inf.RunCompleted, inf.RunFailed, inf.RunCancelled)
FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 30.0


def _encode(payload: dict[str, Any]) -> str:
    return msgspec.json.encode(payload).decode()


def progress_frame(progress: inf.RunProgress) -> Frame:
    return Frame(_encode({"type": "progress", "progress": progress_view(progress)}), progress_of=progress.run_id)


def event_frame(event: Message, sequence: int = 0) -> Frame | None:
    """The frame for a stored event the browser cares about; None for any other event.

    An annotation frame carries the record's new version (the event's stream sequence): what the
    next mark on that record names as expected_version.
    """
    if isinstance(event, inf.ResultRecorded):
        return Frame(_encode({"type": "result", "result": result_view(event)}))
    if isinstance(event, RUN_EVENTS):
        return Frame(_encode({"type": "run", "event": event.DESCRIPTOR.name, **message_fields(event)}))
    if isinstance(event, ANNOTATION_EVENTS):
        fields = message_fields(event)
        if isinstance(event, ann.AnnotationRecorded):
            fields["kind"] = annotation_kind_word(event.kind)
        payload = {"type": "annotation", "event": event.DESCRIPTOR.name, **fields, "version": sequence}
        return Frame(_encode(payload))
    return None


@dataclass(frozen=True, slots=True)
class Position:
    """Where the relay is in the stream: the last sequence it saw, in the stream created then."""

    created: datetime | None
    sequence: int


class NatsRelay:
    """Feeds the hub from NATS until cancelled; waits for NATS and the stream when they are not up yet."""

    def __init__(
        self,
        url: str,
        stream: str,
        hub: LiveHub,
        first_backoff_s: float = FIRST_BACKOFF_S,
        changed: Callable[[str], None] | None = None,
    ) -> None:
        self.url = url
        self.stream = stream
        self.hub = hub
        self.changed = changed  # told the dataset of each result and mark (the live counts)
        self.first_backoff_s = first_backoff_s
        self.nc: NatsClient | None = None
        self.position: Position | None = None

    @property
    def connected(self) -> bool:
        return self.nc is not None and self.nc.is_connected

    async def run(self) -> None:
        async def quiet(error: Exception) -> None:
            log.debug("NATS: %s", error)

        # Retries forever (also the first connect), so the gateway serves HTTP while NATS starts.
        self.nc = await nats.connect(
            self.url, name="wb-gateway", max_reconnect_attempts=-1, reconnect_time_wait=2, error_cb=quiet
        )
        log.info("live updates: connected to NATS at %s", self.url)
        try:
            await self.nc.subscribe(PROGRESS_SUBJECT, cb=self._on_progress)
            await self.follow_events(JetStreamEventStore(self.nc, self.stream))
        finally:
            await self.nc.close()

    async def follow_events(self, events: JetStreamEventStore) -> None:
        """Relays the stream's run and result events, resuming after each failure where it stopped."""
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
        return last + 1

    def _on_event(self, raw: RawEvent) -> None:
        if self.position is not None:
            self.position = Position(self.position.created, raw.sequence)
        try:
            stored = raw.decode()
        except (EventLogError, DecodeError) as error:
            log.debug("skipping an event the gateway cannot read: %s", error)
            return
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
