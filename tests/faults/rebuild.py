"""A rebuild of every read model compared with the live one, table by table, row by row.

Each service's projections (its bootstrap's projections(), what `python -m <service> rebuild`
replays) are folded from the whole log into an empty in-memory database, then compared with the
live database of the running service once both stand at the same stream position.
"""

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Engine, Select, Table, select

from annotations_service.bootstrap import projections as annotations_projections
from datasets_service.bootstrap import projections as datasets_projections
from devstack import Stack
from eventlog import JetStreamEventStore, Projection, ProjectionCheckpoint, ProjectionRunner
from inference_service.bootstrap import projections as inference_projections
from servicehost.database import create_engine
from tests.faults.observers import close_quietly

READ_MODELS: dict[str, Callable[[], Sequence[Projection]]] = {
    "datasets": datasets_projections,
    "inference": inference_projections,
    "annotations": annotations_projections,
}
SAME_POSITION_WITHIN_S = 60.0

Rows = dict[str, list[tuple[Any, ...]]]


async def rebuild_mismatches(stack: Stack) -> list[str]:
    """The tables ("service: table (how)") whose rebuilt rows differ from the live ones."""
    events = await JetStreamEventStore.connect(stack.nats_url)
    mismatches: list[str] = []
    try:
        for service, projections in READ_MODELS.items():
            live = create_engine(stack.env()[f"WB_{service.upper()}_DB_URL"])
            rebuilt = create_engine("sqlite://")
            try:
                for projection in projections():
                    runner = ProjectionRunner(events, rebuilt, projection)
                    mismatches += [f"{service}: {where}" for where in await compare(runner, live)]
            finally:
                live.dispose()
                rebuilt.dispose()
    finally:
        await close_quietly(events)
    return mismatches


async def compare(runner: ProjectionRunner, live: Engine) -> list[str]:
    """Folds the log into the runner's (empty) database until it stands where the live projection
    does, then the tables whose rows differ, each with its first differing row."""
    tables = [model.__table__ for model in runner.projection.tables]  # type: ignore[attr-defined]
    deadline = time.monotonic() + SAME_POSITION_WITHIN_S
    while True:
        position = await runner.catch_up()
        live_position, live_rows = await asyncio.to_thread(settled_rows, live, runner.name, tables)
        if live_position == position:
            break
        if time.monotonic() > deadline:
            return [f"{runner.name} stands at {live_position} while the log's events on its subjects end at {position}"]
        if live_position < position:  # the live projection has not applied the newest events yet
            await asyncio.sleep(0.2)
    _, rebuilt_rows = await asyncio.to_thread(settled_rows, runner.engine, runner.name, tables)
    return [
        f"{table} ({first_difference(live_rows[table], rebuilt_rows[table])})"
        for table in live_rows
        if live_rows[table] != rebuilt_rows[table]
    ]


def settled_rows(engine: Engine, projection: str, tables: Sequence[Table]) -> tuple[int, Rows]:
    """The projection's position and its tables' rows, read while no batch was committed in between
    (the checkpoint moves with every commit, in the same transaction as the rows)."""
    while True:
        before = position_of(engine, projection)
        with engine.connect() as connection:
            rows = {table.name: [tuple(row) for row in connection.execute(in_key_order(table))] for table in tables}
        if position_of(engine, projection) == before:
            return before, rows


def in_key_order(table: Table) -> Select[Any]:
    return select(table).order_by(*table.primary_key.columns)


def position_of(engine: Engine, projection: str) -> int:
    with engine.connect() as connection:
        checkpoints = ProjectionCheckpoint.__table__  # type: ignore[attr-defined]
        query = select(checkpoints.c.sequence).where(checkpoints.c.name == projection)
        return int(connection.execute(query).scalar() or 0)


def first_difference(live: list[tuple[Any, ...]], rebuilt: list[tuple[Any, ...]]) -> str:
    for index, (mine, theirs) in enumerate(zip(live, rebuilt, strict=False)):
        if mine != theirs:
            return f"row {index}: live {mine!r}, rebuilt {theirs!r}"
    return f"{len(live)} rows live, {len(rebuilt)} rebuilt"
