"""Appends started while nats-server is away fail (they are retried), and never block the appends
that come once it is back: a worker keeps recording results after nats-server was killed under it."""

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from devstack.natsserver import NatsServer
from eventlog import JetStreamEventStore, NewEvent
from workbench.inference.v1.inference_pb2 import ResultRecorded

# More failed appends than nats-py keeps publish_async slots for (JetStreamEventStore asks for 4,000),
# of results big enough that the client's outbound buffer (2 MB) takes only a few hundred of them.
FAILED_APPENDS = 4_400
BIG = "word " * 2_000


def result(n: int, text: str = "") -> NewEvent:
    return NewEvent("wb.results.run_1", ResultRecorded(run_id="run_1", record_id=f"r{n}", output_text=text), f"r{n}")


async def until(condition: Callable[[], bool], within_s: float = 10.0) -> None:
    for _ in range(int(within_s / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise TimeoutError(f"not so within {within_s} s")


async def test_appends_that_failed_while_nats_was_away_leave_none_waiting_once_it_is_back(tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "nats").start()
    events = await JetStreamEventStore.connect(server.url)
    try:
        await events.ensure_stream()
        server.stop(kill=True)
        await until(lambda: not events.nc.is_connected)

        # The client buffers what is published meanwhile, up to its outbound limit; past it appends fail.
        started = []
        for n in range(FAILED_APPENDS):
            began = time.monotonic()
            started.append(await asyncio.wait_for(events.start_append(result(n, BIG)), 1))
            if time.monotonic() - began >= 0.5:
                pytest.fail(f"append {n} waited for a publish slot of nats-py that an earlier failed one keeps")
        outcomes = asyncio.gather(*(pending.confirm() for pending in started), return_exceptions=True)

        server = NatsServer(tmp_path / "nats", port=server.port).start()
        await until(lambda: events.nc.is_connected, within_s=15)

        failed = [outcome for outcome in await outcomes if isinstance(outcome, Exception)]
        assert 4_000 < len(failed) < FAILED_APPENDS  # those past the buffer; the buffered ones were stored
        pending = await asyncio.wait_for(events.start_append(result(FAILED_APPENDS)), 1)
        assert await pending.confirm() > 0
    finally:
        await events.close()
        server.stop()


@pytest.fixture(autouse=True)
def _quiet_reconnect_errors(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("CRITICAL", logger="nats.aio.client")
