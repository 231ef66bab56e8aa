"""A process at start waits for a nats-server that answers its stream set-up late (a server busy
with its disk, a loaded machine) instead of exiting after nats-py's 5 s request timeout."""

import asyncio

import nats.errors
import pytest

from devstack.faults import freeze, thaw
from devstack.natsserver import NatsServer
from eventlog import JetStreamEventStore, patiently

SILENT_S = 7.0  # longer than nats-py's JetStream request timeout (5 s)


async def test_the_stream_is_set_up_once_a_server_that_answered_nothing_for_seven_seconds_answers(
    fresh_nats: NatsServer,
) -> None:
    server = fresh_nats
    assert server.process is not None
    events = await JetStreamEventStore.connect(server.url)
    try:
        freeze(server.process.pid)
        asyncio.get_running_loop().call_later(SILENT_S, thaw, server.process.pid)

        await events.ensure_stream()

        info = await events.js.stream_info(events.stream)
        assert info.config.name == events.stream
    finally:
        thaw(server.process.pid)
        await events.close()


async def test_a_server_silent_for_longer_than_the_patience_still_fails_the_start(fresh_nats: NatsServer) -> None:
    server = fresh_nats
    assert server.process is not None
    events = await JetStreamEventStore.connect(server.url)
    try:
        freeze(server.process.pid)
        with pytest.raises(nats.errors.TimeoutError):
            await patiently(lambda: events.js.stream_info(events.stream), "the test's stream info", within_s=1.0)
    finally:
        thaw(server.process.pid)
        await events.close()
