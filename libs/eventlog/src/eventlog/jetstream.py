"""The event store on NATS JetStream: one stream holding every event of the workbench."""

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar, cast

import nats
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from nats.js.errors import APIError, NotFoundError

from eventlog.codec import RawEvent, encode_headers
from eventlog.errors import AppendTimeout, ConcurrencyConflict
from eventlog.events import NewEvent
from eventlog.store import EventStore, Subjects, subject_list

log = logging.getLogger(__name__)

DEFAULT_STREAM = "WB_EVENTS"
DEFAULT_SUBJECTS = ("wb.datasets.>", "wb.runs.>", "wb.results.>", "wb.annotations.>", "wb.workers.>", "wb.access.>")
DEFAULT_ACK_TIMEOUT_S = 30.0
# JetStream's error code for "wrong last sequence" on Nats-Expected-Last-Subject-Sequence.
_WRONG_LAST_SEQUENCE = 10071
# A cluster's answer to a message whose Nats-Msg-Id another publish is still storing (a single server
# answers a duplicate): once that one is stored, the same publish is answered as its duplicate.
DUPLICATE_IN_PROCESS = 10158
_IN_PROCESS_RETRY_S = 0.02
# How long a process at start keeps asking a JetStream question nats-server does not answer in time.
STARTUP_PATIENCE_S = 60.0

T = TypeVar("T")


async def patiently(request: Callable[[], Awaitable[T]], what: str, within_s: float = STARTUP_PATIENCE_S) -> T:
    """request(), asked again while nats-server leaves it unanswered (nats-py's timeout, 5 s), for up
    to within_s: a server just started, or one whose disk is busy, answers a stream's or a consumer's
    set-up late, and a process at start should wait for it rather than exit. Only for requests that
    are safe to repeat (an info, or a create that finds what an earlier try made)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while True:
        try:
            return await request()
        except nats.errors.TimeoutError:
            if loop.time() >= deadline:
                raise
            log.warning("nats-server did not answer in time (%s); asking again", what)


def nats_servers(url: str) -> list[str]:
    """The server URLs in a WB_NATS_URL: one, or several comma-separated (a cluster's servers; the
    client moves to another when its server goes away)."""
    servers = [part.strip() for part in url.split(",") if part.strip()]
    if not servers:
        raise ValueError(f"no NATS server URL in {url!r}: give one, or several separated by commas")
    return servers


@dataclass(frozen=True, slots=True)
class StreamSettings:
    """How the event stream is created: replicas (1 on one server, 3 in a cluster) and dedup window."""

    subjects: Sequence[str] = DEFAULT_SUBJECTS
    replicas: int = 1
    duplicate_window_s: float = 24 * 3600


@dataclass(frozen=True, slots=True)
class ReplicaMismatch:
    """A stream stored with other replicas than the settings ask for: reported, never changed."""

    stream: str
    replicas: int
    wanted: int

    def __str__(self) -> str:
        return (
            f"stream {self.stream} has {self.replicas} replicas where WB_STREAM_REPLICAS asks for {self.wanted}: "
            f"change the stream (nats stream edit {self.stream} --replicas {self.wanted}) or the setting"
        )


async def replica_mismatch(js: JetStreamContext, stream: str, wanted: int) -> ReplicaMismatch | None:
    """How the stream's replicas differ from wanted, as the server has it; None when they agree."""
    info = await patiently(lambda: js.stream_info(stream), f"stream {stream}'s info")
    replicas = info.config.num_replicas or 1
    return None if replicas == wanted else ReplicaMismatch(stream, replicas, wanted)


class JetStreamEventStore(EventStore):
    """The event store on one JetStream stream (WB_EVENTS unless told otherwise)."""

    def __init__(
        self, nc: NatsClient, stream: str = DEFAULT_STREAM, ack_timeout: float = DEFAULT_ACK_TIMEOUT_S
    ) -> None:
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream(publish_async_max_pending=4000)
        settle_async_errors(self.js)
        self.stream = stream
        self.ack_timeout = ack_timeout

    @classmethod
    async def connect(
        cls, url: str, stream: str = DEFAULT_STREAM, name: str | None = None, *, user: str = "", password: str = ""
    ) -> "JetStreamEventStore":
        """Connects to NATS at url (one server, or several comma-separated), as user when one is given
        (a server with users refuses anyone else)."""
        nc = await nats.connect(
            nats_servers(url),
            name=name,
            max_reconnect_attempts=-1,
            connect_timeout=5,
            user=user or None,
            password=password or None,
        )
        return cls(nc, stream)

    async def close(self) -> None:
        await self.nc.drain()

    async def ensure_stream(self, settings: StreamSettings | None = None) -> None:
        """Creates the stream with settings.replicas, or updates its subjects; safe to call from every
        process at start. An existing stream keeps its replicas (replica_mismatch tells)."""
        await patiently(lambda: self._ensure_stream(settings or StreamSettings()), f"creating stream {self.stream}")

    async def _ensure_stream(self, settings: StreamSettings) -> None:
        config = api.StreamConfig(
            name=self.stream,
            subjects=list(settings.subjects),
            retention=api.RetentionPolicy.LIMITS,
            storage=api.StorageType.FILE,
            duplicate_window=settings.duplicate_window_s,
            num_replicas=settings.replicas,
            allow_direct=True,
        )
        try:
            info = await self.js.stream_info(self.stream)
        except NotFoundError:
            await self.js.add_stream(config)
            return
        # Replicas stay as they are (replica_mismatch reports a difference): changing them moves the
        # log between servers, an operator's step, not something every process start should do.
        if set(info.config.subjects or []) != set(settings.subjects):
            await self.js.update_stream(config.evolve(num_replicas=info.config.num_replicas))

    # Appends name no expected stream (nats-py's stream=): the wb.* subjects belong to this stream
    # by its configuration, and a third header per event costs more than its check is worth on the
    # results' hot path (bench/eventlog.py).

    async def append(self, new: NewEvent) -> int:
        headers = encode_headers(new.event, new.msg_id, new.expected_sequence, new.correlation_id)
        deadline = asyncio.get_running_loop().time() + self.ack_timeout
        while True:
            try:
                ack = await self.js.publish(
                    new.subject, new.event.SerializeToString(), headers=headers, timeout=self.ack_timeout
                )
            except APIError as error:
                if error.err_code == DUPLICATE_IN_PROCESS and asyncio.get_running_loop().time() < deadline:
                    await asyncio.sleep(_IN_PROCESS_RETRY_S)
                    continue
                raise _translate(error, new) from None
            except nats.errors.TimeoutError:
                raise AppendTimeout(new.subject, self.ack_timeout) from None
            return ack.seq

    async def start_append(self, new: NewEvent) -> "JetStreamPendingAppend":
        if new.expected_sequence is not None or not self.nc.is_connected:
            # The awaited path, for two reasons. nats-py 2.16 raises a publish_async's API error
            # inside its reply handler instead of failing the future, so a refused expected sequence
            # would look like a lost ack. And a publish_async that fails while the client reconnects
            # (its outbound buffer full) keeps one of the publish_async_max_pending slots for good:
            # after a few thousand of those, every publish_async would wait forever.
            return JetStreamPendingAppend(new, asyncio.ensure_future(self.append(new)), self.ack_timeout)
        headers = encode_headers(new.event, new.msg_id, new.expected_sequence, new.correlation_id)
        future = await self.js.publish_async(new.subject, new.event.SerializeToString(), headers=headers)
        return JetStreamPendingAppend(new, future, self.ack_timeout, again=self.append)

    async def append_many(self, news: Iterable[NewEvent]) -> list[int]:
        # One bounded wait for the whole batch: a wait_for per event (a timer and a task each) cost
        # a sixth of the time of a bulk append (bench/eventlog.py).
        pending = [await self.start_append(new) for new in news]
        try:
            acks = await asyncio.wait_for(
                asyncio.gather(*(item.future for item in pending), return_exceptions=True), self.ack_timeout
            )
        except TimeoutError:
            raise AppendTimeout(pending[0].new.subject if pending else "", self.ack_timeout) from None
        sequences = []
        for item, ack in zip(pending, acks, strict=True):
            if isinstance(ack, APIError) and ack.err_code == DUPLICATE_IN_PROCESS:
                ack = await self.append(item.new)  # answered as the duplicate once the other is stored
            if isinstance(ack, APIError):
                raise _translate(ack, item.new) from None
            if isinstance(ack, BaseException):
                raise ack
            sequences.append(ack if isinstance(ack, int) else int(cast(api.PubAck, ack).seq))
        return sequences

    async def get(self, sequence: int) -> RawEvent | None:
        try:
            raw = await self.js.get_msg(self.stream, seq=sequence, direct=True)
        except NotFoundError:
            return None
        return RawEvent(
            sequence=raw.seq or sequence,
            subject=raw.subject or "",
            data=raw.data or b"",
            headers=dict(raw.headers or {}),
            time=None,
        )

    async def last_sequence(self, subject: str | None = None) -> int:
        if subject is None:
            info = await self.js.stream_info(self.stream)
            return info.state.last_seq
        try:
            raw = await self.js.get_last_msg(self.stream, subject, direct=True)
        except NotFoundError:
            return 0
        return raw.seq or 0

    async def count(self, subject: str) -> int:
        info = await self.js.stream_info(self.stream, subjects_filter=subject)
        return sum((info.state.subjects or {}).values())

    async def replay_raw(self, subjects: Subjects, start: int = 1) -> AsyncGenerator[RawEvent, None]:
        sub = await self._subscribe(subjects, start)
        try:
            info = await sub.consumer_info()
            if not info.num_pending and not (info.delivered and info.delivered.consumer_seq):
                return
            while True:
                msg = await sub.next_msg(timeout=30)
                yield raw_event(msg)
                if msg.metadata.num_pending == 0:
                    return
        finally:
            await _unsubscribe(sub)

    async def follow_raw(self, subjects: Subjects, start: int | None = 1) -> AsyncGenerator[RawEvent, None]:
        sub = await self._subscribe(subjects, start)
        try:
            while True:
                try:
                    msg = await sub.next_msg(timeout=None)
                except nats.errors.TimeoutError:
                    continue
                yield raw_event(msg)
        finally:
            await _unsubscribe(sub)

    async def _subscribe(self, subjects: Subjects, start: int | None) -> JetStreamContext.PushSubscription:
        # An ordered consumer: no acks, in order, re-created by the client on a gap.
        wanted = subject_list(subjects)
        config = api.ConsumerConfig(filter_subjects=wanted if len(wanted) > 1 else None)
        if start is None:
            policy = api.DeliverPolicy.NEW
        else:
            policy = api.DeliverPolicy.BY_START_SEQUENCE
            config.opt_start_seq = max(start, 1)
        return await self.js.subscribe(
            wanted[0],
            stream=self.stream,
            ordered_consumer=True,
            deliver_policy=policy,
            config=config,
            idle_heartbeat=5.0,
            pending_msgs_limit=200_000,
            pending_bytes_limit=512 * 1024 * 1024,
        )


class JetStreamPendingAppend:
    """A publish under way; confirm() waits for the server's acknowledgement, bounded.

    nats-py never fails a publish whose answer is lost (a server restart, a leader change), so the
    wait is bounded: AppendTimeout means "not known to be stored"; retrying with the same msg_id is safe.
    """

    def __init__(
        self,
        new: NewEvent,
        future: "asyncio.Future[api.PubAck] | asyncio.Future[int]",
        timeout: float,
        again: Callable[[NewEvent], Awaitable[int]] | None = None,
    ) -> None:
        self.new = new
        self.future = future
        self._timeout = timeout
        self._again = again

    async def confirm(self) -> int:
        try:
            ack: api.PubAck | int = await asyncio.wait_for(self.future, self._timeout)
        except APIError as error:
            if error.err_code == DUPLICATE_IN_PROCESS and self._again is not None:
                return await self._again(self.new)
            raise _translate(error, self.new) from None
        except TimeoutError:
            raise AppendTimeout(self.new.subject, self._timeout) from None
        return ack if isinstance(ack, int) else int(ack.seq)


def raw_event(msg: Msg) -> RawEvent:
    """The RawEvent of a message delivered by a JetStream consumer."""
    meta = msg.metadata
    return RawEvent(
        sequence=meta.sequence.stream,
        subject=msg.subject,
        data=msg.data,
        headers=dict(msg.headers or {}),
        time=meta.timestamp,
        pending=meta.num_pending or 0,
    )


async def _unsubscribe(sub: JetStreamContext.PushSubscription) -> None:
    try:
        await sub.unsubscribe()
    except Exception:  # the connection may already be closing
        log.debug("unsubscribe failed", exc_info=True)


def settle_async_errors(js: JetStreamContext) -> None:
    """Makes an error answer to publish_async fail its future.

    nats-py 2.16's reply handler raises the answer's APIError (APIError.from_error raises) instead of
    setting it on the future, which then never settles: the append would wait out its whole timeout
    (seen on a cluster as 10158, a message id in process, holding a shard up for 30 s). The handler
    is wrapped before the first publish_async subscribes it; the token is found as nats-py finds it.
    Every JetStream context that calls publish_async should be passed here once.
    """
    handle = js._handle_async_reply

    async def settle(msg: Msg) -> None:
        try:
            await handle(msg)
        except APIError as error:
            token = msg.subject[len(js._nc._inbox_prefix) + 22 + 2 :]
            future = js._publish_async_futures.get(token)
            if future is not None and not future.done():
                future.set_exception(error)

    js._handle_async_reply = settle  # type: ignore[method-assign]


def _translate(error: APIError, new: NewEvent) -> Exception:
    if error.err_code == _WRONG_LAST_SEQUENCE and new.expected_sequence is not None:
        return ConcurrencyConflict(new.subject, new.expected_sequence, error.description or "")
    return error
