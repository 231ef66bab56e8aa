"""The event log: one JetStream stream holding every event of the workbench."""

import asyncio
import logging
from collections.abc import AsyncGenerator, Iterable, Sequence
from dataclasses import dataclass

import nats
from google.protobuf.message import Message
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from nats.js.errors import APIError, NotFoundError

from eventlog.codec import TYPE_HEADER, StoredEvent, decode_event, encode_headers
from eventlog.errors import AppendTimeout, ConcurrencyConflict

log = logging.getLogger(__name__)

DEFAULT_STREAM = "WB_EVENTS"
DEFAULT_SUBJECTS = ("wb.datasets.>", "wb.runs.>", "wb.results.>", "wb.annotations.>")
# JetStream's error code for "wrong last sequence" on Nats-Expected-Last-Subject-Sequence.
_WRONG_LAST_SEQUENCE = 10071


@dataclass(frozen=True, slots=True)
class Append:
    """One event to append: where, what, and how retries and races are detected."""

    subject: str
    event: Message
    msg_id: str | None = None
    expected_sequence: int | None = None
    correlation_id: str | None = None


class EventLog:
    """Appends, reads and follows the workbench's events on a JetStream stream."""

    def __init__(self, nc: NatsClient, stream: str = DEFAULT_STREAM, ack_timeout: float = 30.0) -> None:
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream(publish_async_max_pending=4000)
        self.stream = stream
        self.ack_timeout = ack_timeout

    @classmethod
    async def connect(cls, url: str, stream: str = DEFAULT_STREAM, name: str | None = None) -> "EventLog":
        nc = await nats.connect(url, name=name, max_reconnect_attempts=-1, connect_timeout=5)
        return cls(nc, stream)

    async def close(self) -> None:
        await self.nc.drain()

    async def ensure_stream(
        self,
        subjects: Sequence[str] = DEFAULT_SUBJECTS,
        duplicate_window_s: float = 24 * 3600,
        replicas: int = 1,
    ) -> None:
        """Creates the stream, or updates its subjects; safe to call from every process at start."""
        config = api.StreamConfig(
            name=self.stream,
            subjects=list(subjects),
            retention=api.RetentionPolicy.LIMITS,
            storage=api.StorageType.FILE,
            duplicate_window=duplicate_window_s,
            num_replicas=replicas,
            allow_direct=True,
        )
        try:
            info = await self.js.stream_info(self.stream)
        except NotFoundError:
            await self.js.add_stream(config)
            return
        if set(info.config.subjects or []) != set(subjects):
            await self.js.update_stream(config)

    async def append(
        self,
        subject: str,
        event: Message,
        *,
        msg_id: str | None = None,
        expected_sequence: int | None = None,
        correlation_id: str | None = None,
    ) -> int:
        """Appends one event and returns its stream sequence.

        msg_id makes a retry a no-op (JetStream deduplicates it and answers with the first
        sequence); expected_sequence (0: the subject must be empty) makes a concurrent writer fail
        with ConcurrencyConflict instead of overwriting silently.
        """
        headers = encode_headers(event, msg_id, expected_sequence, correlation_id)
        try:
            ack = await self.js.publish(
                subject, event.SerializeToString(), headers=headers, stream=self.stream, timeout=self.ack_timeout
            )
        except APIError as error:
            raise _translate(error, subject, expected_sequence) from None
        except nats.errors.TimeoutError:
            raise AppendTimeout(subject, self.ack_timeout) from None
        return ack.seq

    async def append_many(self, items: Iterable[Append]) -> list[int]:
        """Appends many events with many publishes in flight; returns their sequences in order.

        Every item has been stored (or deduplicated) when this returns.
        """
        futures = [await self.append_nowait(item) for item in items]
        return [await self.confirm(item, future) for item, future in futures]

    async def append_nowait(self, item: Append) -> "tuple[Append, asyncio.Future[api.PubAck]]":
        """Starts an append; pass the pair to confirm() to learn its sequence (hot paths)."""
        headers = encode_headers(item.event, item.msg_id, item.expected_sequence, item.correlation_id)
        future = await self.js.publish_async(
            item.subject, item.event.SerializeToString(), headers=headers, stream=self.stream
        )
        return item, future

    async def confirm(self, item: Append, future: "asyncio.Future[api.PubAck]") -> int:
        """Waits for the server's acknowledgement of an append started with append_nowait().

        nats-py never fails a publish whose answer is lost (a server restart, a leader change), so
        the wait is bounded: AppendTimeout means "not known to be stored"; retrying with the same
        msg_id is safe.
        """
        try:
            ack = await asyncio.wait_for(future, self.ack_timeout)
        except APIError as error:
            raise _translate(error, item.subject, item.expected_sequence) from None
        except TimeoutError:
            raise AppendTimeout(item.subject, self.ack_timeout) from None
        return ack.seq

    async def last_sequence(self, subject: str | None = None) -> int:
        """The stream's last sequence, or the last sequence of one subject (0 when none)."""
        if subject is None:
            info = await self.js.stream_info(self.stream)
            return info.state.last_seq
        try:
            raw = await self.js.get_last_msg(self.stream, subject, direct=True)
        except NotFoundError:
            return 0
        return raw.seq or 0

    async def count(self, subject: str) -> int:
        """How many events a subject (wildcards allowed) holds."""
        info = await self.js.stream_info(self.stream, subjects_filter=subject)
        return sum((info.state.subjects or {}).values())

    async def read(self, subjects: str | Sequence[str], start: int = 1) -> list[StoredEvent]:
        """Every event on the subjects from sequence start up to now, in order."""
        return [event async for event in self.replay(subjects, start)]

    async def replay(self, subjects: str | Sequence[str], start: int = 1) -> AsyncGenerator[StoredEvent, None]:
        """Yields the events on the subjects from sequence start, then stops at the current end."""
        async for msg in self.raw_replay(subjects, start):
            event = decode_message(msg)
            if event is not None:
                yield event

    async def raw_replay(self, subjects: str | Sequence[str], start: int = 1) -> AsyncGenerator[Msg, None]:
        sub = await self._subscribe(subjects, start)
        try:
            info = await sub.consumer_info()
            if not info.num_pending and not (info.delivered and info.delivered.consumer_seq):
                return
            while True:
                msg = await sub.next_msg(timeout=30)
                yield msg
                if msg.metadata.num_pending == 0:
                    return
        finally:
            await _unsubscribe(sub)

    async def follow(self, subjects: str | Sequence[str], start: int | None = 1) -> AsyncGenerator[StoredEvent, None]:
        """Yields the events on the subjects from sequence start (None: only new ones), forever.

        Close it (contextlib.aclosing) when done early: until then its consumer keeps receiving.
        """
        async for msg in self.raw_follow(subjects, start):
            event = decode_message(msg)
            if event is not None:
                yield event

    async def raw_follow(self, subjects: str | Sequence[str], start: int | None = 1) -> AsyncGenerator[Msg, None]:
        sub = await self._subscribe(subjects, start)
        try:
            while True:
                try:
                    msg = await sub.next_msg(timeout=None)
                except nats.errors.TimeoutError:
                    continue
                yield msg
        finally:
            await _unsubscribe(sub)

    async def _subscribe(self, subjects: str | Sequence[str], start: int | None) -> JetStreamContext.PushSubscription:
        # An ordered consumer: no acks, in order, re-created by the client on a gap.
        subject_list = [subjects] if isinstance(subjects, str) else list(subjects)
        config = api.ConsumerConfig(filter_subjects=subject_list if len(subject_list) > 1 else None)
        if start is None:
            policy = api.DeliverPolicy.NEW
        else:
            policy = api.DeliverPolicy.BY_START_SEQUENCE
            config.opt_start_seq = max(start, 1)
        return await self.js.subscribe(
            subject_list[0],
            stream=self.stream,
            ordered_consumer=True,
            deliver_policy=policy,
            config=config,
            idle_heartbeat=5.0,
            pending_msgs_limit=200_000,
            pending_bytes_limit=512 * 1024 * 1024,
        )


async def _unsubscribe(sub: JetStreamContext.PushSubscription) -> None:
    try:
        await sub.unsubscribe()
    except Exception:  # the connection may already be closing
        log.debug("unsubscribe failed", exc_info=True)


def decode_message(msg: Msg) -> StoredEvent | None:
    """The StoredEvent a stream message holds; None for messages without an event type."""
    headers = dict(msg.headers or {})
    name = headers.get(TYPE_HEADER)
    if name is None:
        return None
    meta = msg.metadata
    return StoredEvent(
        sequence=meta.sequence.stream,
        subject=msg.subject,
        type_name=name,
        event=decode_event(name, msg.data),
        time=meta.timestamp,
        headers=headers,
    )


def _translate(error: APIError, subject: str, expected: int | None) -> Exception:
    if error.err_code == _WRONG_LAST_SEQUENCE and expected is not None:
        return ConcurrencyConflict(subject, expected, error.description or "")
    return error
