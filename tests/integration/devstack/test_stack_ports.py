"""`make run` on a machine where a port is taken (a laptop may run NATS or another app on it)."""

import socket
from dataclasses import replace
from pathlib import Path

import pytest

from devstack import Stack, StackPorts
from devstack.natsserver import PortInUse
from tests.conftest import REPO


def test_a_busy_port_is_named_with_its_variable_and_nothing_is_started(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ports = replace(StackPorts.free(), gateway=taken.getsockname()[1])
        stack = Stack(REPO, tmp_path, ports)

        with pytest.raises(PortInUse, match="WB_GATEWAY_PORT"):
            stack.start()

    assert stack.nats is None
    assert stack.processes == {}
