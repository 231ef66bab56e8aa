"""The one way to open a read-model database: SQLite by default, Postgres (or any SQLAlchemy URL) by URL."""

from pathlib import Path
from typing import Any

import sqlmodel
from sqlalchemy import Engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

SQLITE_BUSY_TIMEOUT_MS = 5000


def create_engine(url: str) -> Engine:
    """An engine for a read-model database.

    SQLite (the embedded default): the file's folder is created; write-ahead logging, so queries in
    worker threads read while the projector writes; a busy timeout instead of "database is locked";
    usable from any thread (the projector and queries run in worker threads). An in-memory database
    is one connection shared by every thread, else each thread would see an empty database.
    Postgres: connections are checked before use, so a restarted server costs no failed query.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return sqlmodel.create_engine(url, pool_pre_ping=True)
    in_memory = parsed.database in (None, "", ":memory:")
    if in_memory:
        return sqlmodel.create_engine(url, connect_args={"check_same_thread": False}, poolclass=StaticPool)
    Path(str(parsed.database)).parent.mkdir(parents=True, exist_ok=True)
    engine = sqlmodel.create_engine(url, connect_args={"check_same_thread": False})
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(connection: Any, _: object) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")  # with WAL: durable at checkpoints, safe from corruption
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()
