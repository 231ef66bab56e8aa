"""Projections: read models folded from the event log, with their position saved alongside.

A projection applies events to SQL tables; the runner commits the rows and the stream sequence of
the last applied event in one transaction, so a crash never applies an event twice or skips one.
Dropping every row and replaying from sequence 1 (rebuild) yields the same rows.

An event that cannot be decoded or applied (a bug, a value the database refuses) must not wedge the
service: it is parked in projection_parked_events with its subject, sequence and error, counted,
logged and skipped. After a fix, retry_parked() applies the parked events again. Database errors
that say "not now" (connection lost, database locked) are not the event's fault: the runner waits
and retries the same batch instead.
"""

import asyncio
import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from sqlalchemy import Engine, Table, Text, func, inspect
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlmodel import Column, Field, Session, SQLModel, col, delete, select

from eventlog.codec import RawEvent, StoredEvent
from eventlog.errors import UndecodableEvent
from eventlog.store import EventStore
from eventlog.tasks import cancel_and_wait

log = logging.getLogger(__name__)

# Errors of the database, not of the event: retried, never parked.
TRANSIENT_DB_ERRORS = (OperationalError, InterfaceError, DisconnectionError)
_MAX_ERROR_CHARS = 2000


class ProjectionCheckpoint(SQLModel, table=True):
    __tablename__ = "projection_checkpoints"

    name: str = Field(primary_key=True)
    sequence: int = 0


class ProjectionSchema(SQLModel, table=True):
    """The shape of a projection's tables when its rows were written (see ProjectionRunner)."""

    __tablename__ = "projection_schemas"

    name: str = Field(primary_key=True)
    fingerprint: str


class ParkedEvent(SQLModel, table=True):
    """An event a projection could not decode or apply, skipped until someone retries it."""

    __tablename__ = "projection_parked_events"

    projection: str = Field(primary_key=True)
    sequence: int = Field(primary_key=True)
    subject: str
    type_name: str = ""
    error: str = Field(sa_column=Column(Text, nullable=False))
    parked_at: datetime
    attempts: int = 1


class Projection(Protocol):
    """What a read model implements; it never does I/O beyond the session it is given."""

    name: str
    subjects: Sequence[str]

    @property
    def tables(self) -> Sequence[type[SQLModel]]:
        """The tables it owns: created at start, emptied by clear()."""
        ...

    def apply(self, session: Session, event: StoredEvent) -> None:
        """Folds one event into the tables; must ignore event types it does not know."""

    def clear(self, session: Session) -> None:
        """Deletes every row the projection owns (used by rebuild)."""


@runtime_checkable
class BatchProjection(Projection, Protocol):
    """A projection that can fold a whole batch at once (bulk inserts make rebuilds fast)."""

    def apply_many(self, session: Session, events: Sequence[StoredEvent]) -> None:
        """Folds the events in order; the same rows as apply() one by one."""


@dataclass(frozen=True, slots=True)
class ProjectionStatus:
    """How a projection is doing: applied up to position, lag events behind the log, parked events."""

    name: str
    position: int
    lag: int
    parked: int


@dataclass(frozen=True, slots=True)
class RetryOutcome:
    applied: int
    still_parked: int


@dataclass(frozen=True, slots=True)
class _Unreadable:
    raw: RawEvent
    error: str

    @property
    def sequence(self) -> int:
        return self.raw.sequence


_Item = StoredEvent | _Unreadable


class ProjectionRunner:
    """Feeds a projection from the log, batching events into transactions (run in a worker thread,
    so a big batch does not hold up the service's event loop)."""

    def __init__(
        self,
        store: EventStore,
        engine: Engine,
        projection: Projection,
        batch_size: int = 500,
        retry_delay_s: float = 1.0,
    ) -> None:
        self.store = store
        self.engine = engine
        self.projection = projection
        self.batch_size = batch_size
        self.retry_delay_s = retry_delay_s
        self._position = 0
        self._seen = 0  # the last stream sequence delivered, applied or not
        self._pending = 0  # events on the projection's subjects after the last one delivered
        self._uncommitted = 0
        self._parked = 0
        self._lock = asyncio.Lock()  # one writer: the live batches, a rebuild, a retry of parked events
        self._advanced = asyncio.Condition()
        self._prepare_tables()

    @property
    def name(self) -> str:
        return self.projection.name

    @property
    def position(self) -> int:
        """The stream sequence of the last event applied (or parked)."""
        return self._position

    def status(self) -> ProjectionStatus:
        return ProjectionStatus(self.name, self._position, self._pending + self._uncommitted, self._parked)

    def _prepare_tables(self) -> None:
        """Creates the tables; drops and recreates the projection's own when their shape changed.

        A new version of a projection may add a column or a table: its old rows cannot be read, but
        they are only a projection, so they are dropped and the next catch-up rebuilds them from the
        log. The fingerprint of the tables' columns is kept beside the checkpoint; tables older than
        the fingerprint (or touched by hand) are compared column by column with the database.
        """
        own = _tables(self.projection.tables)
        bookkeeping = _tables([ProjectionCheckpoint, ProjectionSchema, ParkedEvent])
        SQLModel.metadata.create_all(self.engine, tables=bookkeeping)
        fingerprint = schema_fingerprint(own)
        with Session(self.engine) as session:
            known = session.get(ProjectionSchema, self.name)
        if (known is not None and known.fingerprint != fingerprint) or _columns_differ(self.engine, own):
            log.warning("%s: its tables changed shape; dropping them to rebuild from the log", self.name)
            SQLModel.metadata.drop_all(self.engine, tables=own)
            with Session(self.engine) as session:
                session.execute(delete(ProjectionCheckpoint).where(col(ProjectionCheckpoint.name) == self.name))
                session.execute(delete(ParkedEvent).where(col(ParkedEvent.projection) == self.name))
                session.commit()
        SQLModel.metadata.create_all(self.engine, tables=own)
        with Session(self.engine) as session:
            session.merge(ProjectionSchema(name=self.name, fingerprint=fingerprint))
            session.commit()

    def load_position(self) -> int:
        with Session(self.engine) as session:
            row = session.get(ProjectionCheckpoint, self.name)
            self._position = row.sequence if row else 0
            self._parked = session.exec(
                select(func.count()).select_from(ParkedEvent).where(ParkedEvent.projection == self.name)
            ).one()
        self._seen = self._position
        return self._position

    def reset(self) -> None:
        """Drops the projection's rows, parked events and position: the next catch-up rebuilds it."""
        with Session(self.engine) as session:
            self.projection.clear(session)
            session.execute(delete(ParkedEvent).where(col(ParkedEvent.projection) == self.name))
            row = session.get(ProjectionCheckpoint, self.name)
            if row is not None:
                session.delete(row)
            session.commit()
        self._position = self._seen = self._parked = 0

    async def catch_up(self) -> int:
        """Applies every event stored now, then returns the position."""
        batch: list[_Item] = []
        async for raw in self.store.replay_raw(self.projection.subjects, self.load_position() + 1):
            self._take(raw, batch)
            if len(batch) >= self.batch_size:
                await self._commit(batch)
                batch = []
        await self._commit(batch)
        return self._position

    async def rebuild(self) -> int:
        async with self._lock:
            await asyncio.to_thread(self.reset)
        return await self.catch_up()

    async def run(self) -> None:
        """Follows the log forever from the saved position (cancel the task to stop)."""
        batch: list[_Item] = []
        follower = self.store.follow_raw(self.projection.subjects, self.load_position() + 1)
        pending: asyncio.Task[RawEvent] | None = None
        try:
            while True:
                if pending is None:
                    pending = asyncio.ensure_future(anext(follower))
                # Commit a partial batch as soon as the log goes quiet, so reads stay fresh.
                behind = batch or self._seen > self._position
                done, _ = await asyncio.wait({pending}, timeout=0.02 if behind else None)
                if not done:
                    await self._commit_patiently(batch)
                    batch = []
                    continue
                raw = pending.result()
                pending = None
                self._take(raw, batch)
                if len(batch) >= self.batch_size:
                    await self._commit_patiently(batch)
                    batch = []
        finally:
            if pending is not None:  # aclose() fails while anext() is still running
                await cancel_and_wait(pending)  # asked again if the subscription swallowed it
            await follower.aclose()

    async def wait_for(self, sequence: int, within: float = 10.0) -> None:
        """Waits until the event at sequence (or a later one) has been applied."""
        async with self._advanced:
            await asyncio.wait_for(self._advanced.wait_for(lambda: self._position >= sequence), within)

    def parked_events(self) -> list[ParkedEvent]:
        with Session(self.engine) as session:
            query = select(ParkedEvent).where(ParkedEvent.projection == self.name).order_by(col(ParkedEvent.sequence))
            return list(session.exec(query))

    async def retry_parked(self) -> RetryOutcome:
        """Applies the parked events again, oldest first; those that now apply leave the table.

        They are applied after later events have been: fine for the projections of this codebase,
        which fold each aggregate's events independently; a rebuild applies everything in order.
        """
        applied = 0
        async with self._lock:
            for parked in await asyncio.to_thread(self.parked_events):
                raw = await self.store.get(parked.sequence)
                if raw is None:
                    error: str | None = "the event is no longer in the stream (removed by a limit or by hand)"
                else:
                    error = await asyncio.to_thread(self._retry_one, raw)
                if error is None:
                    applied += 1
                else:
                    await asyncio.to_thread(self._note_attempt, parked.sequence, error)
            self._parked -= applied
        return RetryOutcome(applied, self._parked)

    # -- internals --------------------------------------------------------------------------

    def _take(self, raw: RawEvent, batch: list[_Item]) -> None:
        self._seen = raw.sequence
        self._pending = raw.pending
        try:
            event = raw.decode()
        except UndecodableEvent as error:
            batch.append(_Unreadable(raw, str(error)))
        else:
            if event is not None:
                batch.append(event)
        self._uncommitted += 1

    async def _commit_patiently(self, batch: list[_Item]) -> None:
        """_commit, waiting out database errors that say "not now" (the batch is kept, not lost)."""
        delay = self.retry_delay_s
        while True:
            try:
                await self._commit(batch)
                return
            except TRANSIENT_DB_ERRORS as error:
                log.warning("%s: the read-model database failed (%s); retrying in %.0f s", self.name, error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def _commit(self, batch: list[_Item]) -> None:
        upto = max(self._seen, batch[-1].sequence if batch else 0)
        if upto <= self._position:
            return
        async with self._lock:
            parked = await asyncio.to_thread(self._write, batch, upto)
        self._uncommitted = 0
        self._parked += parked
        async with self._advanced:
            self._position = upto
            self._advanced.notify_all()

    def _write(self, batch: list[_Item], upto: int) -> int:
        """Commits the batch and the checkpoint together; returns how many events were parked."""
        try:
            with Session(self.engine) as session:
                events = [item for item in batch if isinstance(item, StoredEvent)]
                if isinstance(self.projection, BatchProjection):
                    self.projection.apply_many(session, events)
                else:
                    for event in events:
                        self.projection.apply(session, event)
                unreadable = [item for item in batch if isinstance(item, _Unreadable)]
                for item in unreadable:
                    self._park(session, item.raw, item.error)
                _checkpoint(session, self.name, upto)
                session.commit()
                return len(unreadable)
        except TRANSIENT_DB_ERRORS:
            raise
        except Exception:
            log.warning("%s: a batch up to %d failed; applying its events one by one", self.name, upto, exc_info=True)
        return self._write_one_by_one(batch, upto)

    def _write_one_by_one(self, batch: list[_Item], upto: int) -> int:
        parked = 0
        for item in batch:
            error = item.error if isinstance(item, _Unreadable) else self._apply_alone(item)
            if error is None:
                continue
            raw = item.raw if isinstance(item, _Unreadable) else _raw_of(item)
            with Session(self.engine) as session:
                self._park(session, raw, error)
                _checkpoint(session, self.name, item.sequence)
                session.commit()
            parked += 1
        with Session(self.engine) as session:
            _checkpoint(session, self.name, upto)
            session.commit()
        return parked

    def _apply_alone(self, event: StoredEvent) -> str | None:
        """Applies one event with its checkpoint; the error that stopped it, or None."""
        return self._apply_and(event, lambda session: _checkpoint(session, self.name, event.sequence))

    def _apply_and(self, event: StoredEvent | None, then: Callable[[Session], None]) -> str | None:
        """Applies an event and then() in one transaction; the error that stopped it, or None
        (database errors that say "not now" are raised: they are not the event's fault)."""
        try:
            with Session(self.engine) as session:
                if event is not None:
                    self.projection.apply(session, event)
                then(session)
                session.commit()
        except TRANSIENT_DB_ERRORS:
            raise
        except Exception as error:
            return _describe(error)
        return None

    def _park(self, session: Session, raw: RawEvent, error: str) -> None:
        log.error(
            "%s parked event %d (%s on %s): %s; `parked` lists them, `parked retry` applies them again",
            self.name,
            raw.sequence,
            raw.type_name or "no type",
            raw.subject,
            error,
        )
        session.merge(
            ParkedEvent(
                projection=self.name,
                sequence=raw.sequence,
                subject=raw.subject,
                type_name=raw.type_name or "",
                error=error[:_MAX_ERROR_CHARS],
                parked_at=datetime.now(UTC),
            )
        )

    def _retry_one(self, raw: RawEvent) -> str | None:
        try:
            event = raw.decode()
        except UndecodableEvent as error:
            return str(error)
        return self._apply_and(event, lambda session: _unpark(session, self.name, raw.sequence))

    def _note_attempt(self, sequence: int, error: str) -> None:
        with Session(self.engine) as session:
            parked = session.get(ParkedEvent, (self.name, sequence))
            if parked is not None:
                parked.error = error[:_MAX_ERROR_CHARS]
                parked.attempts += 1
                session.add(parked)
                session.commit()


def _columns_differ(engine: Engine, tables: Sequence[Table]) -> bool:
    """Whether a table that exists in the database has other columns than its model."""
    found = inspect(engine)
    return any(
        {column["name"] for column in found.get_columns(table.name)} != {column.name for column in table.columns}
        for table in tables
        if found.has_table(table.name)
    )


def _tables(models: Sequence[type[SQLModel]]) -> list[Table]:
    return [model.__table__ for model in models]  # type: ignore[attr-defined]


def schema_fingerprint(tables: Sequence[Table]) -> str:
    """A digest of the tables' names, columns (name, type, nullability, key) and indexes."""
    parts = []
    for table in sorted(tables, key=lambda t: t.name):
        parts.append(table.name)
        for column in table.columns:
            parts.append(f"{column.name}:{column.type!r}:{column.nullable}:{column.primary_key}")
        parts.extend(sorted(f"index {index.name}:{[c.name for c in index.columns]}" for index in table.indexes))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _checkpoint(session: Session, name: str, sequence: int) -> None:
    row = session.get(ProjectionCheckpoint, name) or ProjectionCheckpoint(name=name)
    row.sequence = sequence
    session.add(row)


def _unpark(session: Session, name: str, sequence: int) -> None:
    parked = session.get(ParkedEvent, (name, sequence))
    if parked is not None:
        session.delete(parked)


def _raw_of(event: StoredEvent) -> RawEvent:
    return RawEvent(event.sequence, event.subject, b"", event.headers, event.time)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"
