"""A small projection used by the event-log tests: one row per applied event, plus a counter.

If the runner ever applied an event twice, `applied` would exceed the number of rows' distinct
sequences; if it skipped one, a sequence would be missing.
"""

import asyncio
import sys
import time
from collections.abc import Sequence

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Field, Session, SQLModel, create_engine, delete, select

from eventlog import JetStreamEventStore, ProjectionRunner, StoredEvent


class LedgerRow(SQLModel, table=True):
    __tablename__ = "test_ledger_rows"

    id: int | None = Field(default=None, primary_key=True)
    sequence: int
    subject: str
    content: str


class LedgerCounter(SQLModel, table=True):
    __tablename__ = "test_ledger_counter"

    name: str = Field(primary_key=True)
    applied: int = 0


class Ledger:
    name = "test-ledger"
    tables = (LedgerRow, LedgerCounter)

    def __init__(self, subjects: Sequence[str], delay: float = 0.0, poison: str | None = None) -> None:
        self.subjects = subjects
        self.delay = delay
        self.poison = poison  # content that makes apply fail, as a bug would
        self.database_down_for = 0  # how many more applies fail as if the database were unreachable

    def check(self, event: StoredEvent) -> None:
        if self.database_down_for > 0:
            self.database_down_for -= 1
            raise OperationalError("INSERT ...", {}, ConnectionError("the database went away"))
        if self.poison is not None and event.event.content == self.poison:  # type: ignore[attr-defined]
            raise ValueError(f"cannot fold {self.poison!r}")

    def apply(self, session: Session, event: StoredEvent) -> None:
        self.check(event)
        if self.delay:
            time.sleep(self.delay)  # makes a kill land in the middle of a batch
        session.add(LedgerRow(sequence=event.sequence, subject=event.subject, content=event.event.content))  # type: ignore[attr-defined]
        counter = session.get(LedgerCounter, "all") or LedgerCounter(name="all")
        counter.applied += 1
        session.add(counter)

    def clear(self, session: Session) -> None:
        session.exec(delete(LedgerRow))  # type: ignore[call-overload]
        session.exec(delete(LedgerCounter))  # type: ignore[call-overload]


def rows(engine: Engine) -> list[tuple[int, str, str]]:
    with Session(engine) as session:
        found = session.exec(select(LedgerRow).order_by(LedgerRow.sequence)).all()  # type: ignore[arg-type]
        return [(r.sequence, r.subject, r.content) for r in found]


def applied(engine: Engine) -> int:
    with Session(engine) as session:
        counter = session.get(LedgerCounter, "all")
        return counter.applied if counter else 0


async def _main(url: str, stream: str, subject: str, db_url: str, delay: float) -> None:
    events = await JetStreamEventStore.connect(url, stream=stream)
    runner = ProjectionRunner(events, create_engine(db_url), Ledger([subject], delay), batch_size=50)
    await runner.catch_up()
    await events.close()


if __name__ == "__main__":
    # python ledger.py NATS_URL STREAM SUBJECT DB_URL DELAY: catch up once, then exit.
    import workbench.common.v1.common_pb2  # noqa: F401 - registers the message type used as event

    asyncio.run(_main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])))


class BatchLedger(Ledger):
    """The same ledger, folding a whole batch per call (the runner's bulk path)."""

    def __init__(self, subjects: Sequence[str], poison: str | None = None) -> None:
        super().__init__(subjects, poison=poison)
        self.batches = 0

    def apply_many(self, session: Session, events: Sequence[StoredEvent]) -> None:
        self.batches += 1
        for e in events:
            self.check(e)
        session.add_all(
            LedgerRow(sequence=e.sequence, subject=e.subject, content=e.event.content)  # type: ignore[attr-defined]
            for e in events
        )
        counter = session.get(LedgerCounter, "all") or LedgerCounter(name="all")
        counter.applied += len(events)
        session.add(counter)
