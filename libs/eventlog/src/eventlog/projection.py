"""Projections: read models folded from the event log, with their position saved alongside.

A projection applies events to SQL tables; the runner commits the rows and the stream sequence
of the last applied event in one transaction, so a crash never applies an event twice or skips
one. Dropping every row and replaying from sequence 1 (rebuild) yields the same rows.
"""

import asyncio
import logging
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from nats.aio.msg import Msg
from sqlalchemy import Engine
from sqlmodel import Field, Session, SQLModel, select

from eventlog.codec import StoredEvent
from eventlog.errors import UnknownEventType
from eventlog.log import EventLog, decode_message

log = logging.getLogger(__name__)


class ProjectionCheckpoint(SQLModel, table=True):
    __tablename__ = "projection_checkpoints"

    name: str = Field(primary_key=True)
    sequence: int = 0


class Projection(Protocol):
    """What a read model implements; it never does I/O beyond the session it is given."""

    name: str
    subjects: Sequence[str]

    def apply(self, session: Session, event: StoredEvent) -> None:
        """Folds one event into the tables; must ignore event types it does not know."""

    def clear(self, session: Session) -> None:
        """Deletes every row the projection owns (used by rebuild)."""


@runtime_checkable
class BatchProjection(Projection, Protocol):
    """A projection that can fold a whole batch at once (bulk inserts make rebuilds fast)."""

    def apply_many(self, session: Session, events: Sequence[StoredEvent]) -> None:
        """Folds the events in order; the same rows as apply() one by one."""


class ProjectionRunner:
    """Feeds a projection from the log, batching events into transactions."""

    def __init__(self, events: EventLog, engine: Engine, projection: Projection, batch_size: int = 500) -> None:
        self.events = events
        self.engine = engine
        self.projection = projection
        self.batch_size = batch_size
        self._position = 0
        self._seen = 0  # the last stream sequence read, decodable or not
        self._advanced = asyncio.Condition()
        SQLModel.metadata.create_all(engine)

    @property
    def position(self) -> int:
        """The stream sequence of the last event applied."""
        return self._position

    def load_position(self) -> int:
        with Session(self.engine) as session:
            row = session.get(ProjectionCheckpoint, self.projection.name)
            self._position = row.sequence if row else 0
        self._seen = self._position
        return self._position

    def reset(self) -> None:
        """Drops the projection's rows and position: the next run rebuilds it from sequence 1."""
        with Session(self.engine) as session:
            self.projection.clear(session)
            row = session.get(ProjectionCheckpoint, self.projection.name)
            if row is not None:
                session.delete(row)
            session.commit()
        self._position = self._seen = 0

    async def catch_up(self) -> int:
        """Applies every event stored now, then returns the position."""
        batch: list[StoredEvent] = []
        async for msg in self.events.raw_replay(self.projection.subjects, self.load_position() + 1):
            self._take(msg, batch)
            if len(batch) >= self.batch_size:
                await self._commit(batch)
                batch = []
        await self._commit(batch)
        return self._position

    async def rebuild(self) -> int:
        self.reset()
        return await self.catch_up()

    async def run(self) -> None:
        """Follows the log forever from the saved position (cancel the task to stop)."""
        batch: list[StoredEvent] = []
        follower = self.events.raw_follow(self.projection.subjects, self.load_position() + 1)
        pending: asyncio.Task[object] | None = None
        try:
            while True:
                if pending is None:
                    pending = asyncio.ensure_future(anext(follower))
                # Commit a partial batch as soon as the log goes quiet, so reads stay fresh.
                behind = batch or self._seen > self._position
                done, _ = await asyncio.wait({pending}, timeout=0.02 if behind else None)
                if not done:
                    await self._commit(batch)
                    batch = []
                    continue
                msg = pending.result()
                pending = None
                self._take(msg, batch)  # type: ignore[arg-type]
                if len(batch) >= self.batch_size:
                    await self._commit(batch)
                    batch = []
        finally:
            if pending is not None:
                pending.cancel()
                await asyncio.wait({pending})  # aclose() fails while anext() is still running
            await follower.aclose()

    async def wait_for(self, sequence: int, within: float = 10.0) -> None:
        """Waits until the event at sequence (or a later one) has been applied."""
        async with self._advanced:
            await asyncio.wait_for(self._advanced.wait_for(lambda: self._position >= sequence), within)

    def _take(self, msg: Msg, batch: list[StoredEvent]) -> None:
        """Adds the message's event to the batch; skips (and logs) types this process cannot decode.

        A newer service may append event types an older projector has never heard of (a rolling
        deploy): projections ignore unknown types anyway, so the runner moves past them instead
        of stopping for good at that sequence.
        """
        self._seen = msg.metadata.sequence.stream
        try:
            event = decode_message(msg)
        except UnknownEventType as error:
            log.warning("%s skips sequence %d: %s", self.projection.name, self._seen, error)
            return
        if event is not None:
            batch.append(event)

    async def _commit(self, batch: list[StoredEvent]) -> None:
        upto = max(self._seen, batch[-1].sequence if batch else 0)
        if upto <= self._position:
            return
        with Session(self.engine) as session:
            if isinstance(self.projection, BatchProjection):
                self.projection.apply_many(session, batch)
            else:
                for event in batch:
                    self.projection.apply(session, event)
            row = session.get(ProjectionCheckpoint, self.projection.name) or ProjectionCheckpoint(
                name=self.projection.name
            )
            row.sequence = upto
            session.add(row)
            session.commit()
        async with self._advanced:
            self._position = upto
            self._advanced.notify_all()


def checkpoints(engine: Engine) -> dict[str, int]:
    """Every projection's saved position in a database (for diagnostics and tests)."""
    with Session(engine) as session:
        return {row.name: row.sequence for row in session.exec(select(ProjectionCheckpoint))}
