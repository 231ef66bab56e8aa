"""Wires the runs projection to its database; `python -m inference_service rebuild` replays it from scratch."""

from pathlib import Path

import sqlmodel
from sqlalchemy import Engine

from eventlog import EventLog, ProjectionRunner
from inference_service.adapters.read_model import RunsProjection


def database(url: str) -> Engine:
    """The read model's engine; a SQLite file's folder is created when missing."""
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return sqlmodel.create_engine(url)


def runs_runner(events: EventLog, engine: Engine) -> ProjectionRunner:
    return ProjectionRunner(events, engine, RunsProjection())


async def rebuild(events: EventLog, engine: Engine) -> int:
    """Drops the runs and results tables' rows and replays every run and result event; returns the position."""
    return await runs_runner(events, engine).rebuild()
