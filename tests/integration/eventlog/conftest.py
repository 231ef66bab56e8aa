"""`store`: each event-log test runs on the real JetStream store and on the in-memory one;
`ledger_db`: the test projection's database, SQLite and Postgres."""

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from devstack.natsserver import NatsServer
from eventlog import EventStore, InMemoryEventStore, JetStreamEventStore, StreamSettings
from eventlog.projection import ParkedEvent, ProjectionCheckpoint
from servicehost.database import create_engine

from .ledger import LedgerCounter, LedgerRow


@pytest.fixture(params=["jetstream", "memory"])
async def store(request: pytest.FixtureRequest, nats_server: NatsServer) -> AsyncIterator[EventStore]:
    if request.param == "memory":
        yield InMemoryEventStore()
        return
    stream = f"C_{uuid.uuid4().hex[:10]}"
    jetstream = await JetStreamEventStore.connect(nats_server.url, stream=stream)
    await jetstream.ensure_stream(StreamSettings(subjects=["c.>"]))
    yield jetstream
    await jetstream.js.delete_stream(stream)
    await jetstream.close()


@pytest.fixture(params=["sqlite", "postgres"])
def ledger_db(request: pytest.FixtureRequest, tmp_path: Path, postgres_url: str | None) -> Iterator[tuple[str, Engine]]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ledger.db'}"
    elif postgres_url is None:
        pytest.skip("no Postgres server reachable (WB_TEST_POSTGRES_URL)")
    else:
        url = postgres_url
    engine = create_engine(url)
    ledger_tables(engine, drop=True)
    yield url, engine
    ledger_tables(engine, drop=True)
    engine.dispose()


def ledger_tables(engine: Engine, drop: bool) -> None:
    tables = [t.__table__ for t in (LedgerRow, LedgerCounter, ProjectionCheckpoint, ParkedEvent)]  # type: ignore[attr-defined]
    if drop:
        for table in tables:
            table.drop(engine, checkfirst=True)
