"""Fixtures every test level shares: a real nats-server on a free port, and an event log on it."""

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from eventlog import EventLog
from eventlog.natsserver import NatsServer

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """One real nats-server (JetStream) for the session, on a free port."""
    server = NatsServer(tmp_path_factory.mktemp("nats")).start()
    yield server
    server.stop()


@pytest.fixture
async def event_log(nats_server: NatsServer) -> AsyncIterator[EventLog]:
    """An event log on its own stream, so tests never see each other's events."""
    stream = f"T_{uuid.uuid4().hex[:10]}"
    prefix = f"t{uuid.uuid4().hex[:8]}"
    log = await EventLog.connect(nats_server.url, stream=stream)
    await log.ensure_stream([f"{prefix}.>"])
    log.test_prefix = prefix  # type: ignore[attr-defined]
    yield log
    await log.js.delete_stream(stream)
    await log.close()


@pytest.fixture(scope="session")
def postgres_url() -> str | None:
    """The Postgres server to test the read-model path on, or None where there is none."""
    url = os.environ.get("WB_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")
    try:
        import sqlalchemy

        engine = sqlalchemy.create_engine(url)
        with engine.connect():
            pass
        engine.dispose()
    except Exception:
        return None
    return url


@pytest.fixture
def fresh_nats(tmp_path: Path) -> Iterator[NatsServer]:
    """A nats-server of the test's own (starts in well under a second), for service tests that
    use the real `wb.*` subjects and must not share a stream with other tests."""
    server = NatsServer(tmp_path / "nats").start()
    yield server
    server.stop()
