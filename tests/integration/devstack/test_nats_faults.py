"""The launcher's nats-server faults (devstack.faults) on a stack of nats-server alone."""

from collections.abc import Iterator
from pathlib import Path

import nats
import pytest

from devstack import Stack, StackPorts
from devstack.faults import freeze_nats, kill_nats, restart_nats, thaw_nats
from eventlog import JetStreamEventStore
from tests.conftest import REPO
from workbench.datasets.v1 import datasets_pb2 as ds


@pytest.fixture
def nats_only(tmp_path: Path) -> Iterator[Stack]:
    stack = Stack(REPO, tmp_path, StackPorts.free()).start(names=())
    yield stack
    stack.stop()


async def test_a_killed_nats_server_starts_again_on_its_port_with_its_stream(nats_only: Stack) -> None:
    events = await JetStreamEventStore.connect(nats_only.nats_url)
    await events.ensure_stream()
    await events.js.publish("wb.datasets.d1", ds.DatasetDeleted(dataset_id="d1").SerializeToString())
    await events.close()

    kill_nats(nats_only)
    restart_nats(nats_only)

    events = await JetStreamEventStore.connect(nats_only.nats_url)
    try:
        assert await events.count("wb.datasets.>") == 1
    finally:
        await events.close()


async def test_a_frozen_nats_server_answers_nothing_until_thawed(nats_only: Stack) -> None:
    client = await nats.connect(nats_only.nats_url)
    try:
        pid = freeze_nats(nats_only)
        try:
            with pytest.raises(nats.errors.TimeoutError):
                await client.request("$JS.API.INFO", timeout=0.5)
        finally:
            thaw_nats(pid)
        assert (await client.request("$JS.API.INFO", timeout=5)).data
    finally:
        await client.close()
