"""Wires the runs projection to its database; `python -m inference_service rebuild` replays it from scratch."""

from pathlib import Path

import sqlmodel
from sqlalchemy import Engine
from sqlalchemy.pool import StaticPool

from eventlog import EventLog, ProjectionRunner
from inference_service.adapters.read_model import RunsProjection


def database(url: str) -> Engine:
    """The read model's engine; a SQLite file's folder is created when missing.

    Queries run in worker threads (asyncio.to_thread), so an in-memory SQLite database is one
    connection shared by every thread instead of an empty database per thread.
    """
    if url == "sqlite:///:memory:":
        return sqlmodel.create_engine(url, connect_args={"check_same_thread": False}, poolclass=StaticPool)
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return sqlmodel.create_engine(url)


def runs_runner(events: EventLog, engine: Engine) -> ProjectionRunner:
    return ProjectionRunner(events, engine, RunsProjection())


async def rebuild(events: EventLog, engine: Engine) -> int:
    """Drops the runs and results tables' rows and replays every run and result event; returns the position."""
    return await runs_runner(events, engine).rebuild()
