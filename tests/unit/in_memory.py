"""What an application-layer unit test runs on: the in-memory event store (the same promises as
JetStream, checked by tests/integration/eventlog) and a projection kept up to date in an in-memory
SQLite database, as the service host would. No sockets; milliseconds per test."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from sqlalchemy import Engine

from eventlog import InMemoryEventStore, Projection, ProjectionRunner
from servicehost.database import create_engine


@dataclass
class Projected:
    store: InMemoryEventStore
    runner: ProjectionRunner
    database: Engine


@contextlib.asynccontextmanager
async def projected(projection: Projection, store: InMemoryEventStore | None = None) -> AsyncIterator[Projected]:
    """An in-memory store and the projection following it live (as ServiceHost.start runs it)."""
    store = store or InMemoryEventStore()
    database = create_engine("sqlite://")
    runner = ProjectionRunner(store, database, projection)
    await runner.catch_up()
    live = asyncio.create_task(runner.run())
    try:
        yield Projected(store, runner, database)
    finally:
        live.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await live
        database.dispose()
