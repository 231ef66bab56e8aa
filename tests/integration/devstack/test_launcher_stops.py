"""`make run` stops cleanly: Ctrl-C or SIGTERM stops every process it started within 10 s, and a
launcher killed outright (SIGKILL, which it cannot catch) leaves no child behind to hold a port."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack import StackPorts
from devstack.natsserver import port_is_free
from tests.conftest import REPO

STOP_WITHIN_S = 10.0


def descendants(pid: int) -> set[int]:
    """Every process below pid, from /proc (children, their children, ...)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pids: set[int]) -> set[int]:
    living = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            living.add(pid)
    return living


@pytest.fixture
def launcher(tmp_path: Path, demo_models_file: Path) -> Iterator[tuple[subprocess.Popen[str], StackPorts]]:
    ports = StackPorts.free()
    env = {
        **os.environ,
        "WB_VAR_DIR": str(tmp_path / "var"),
        "WB_MODELS_FILE": str(demo_models_file),
        "WB_NATS_PORT": str(ports.nats),
        "WB_DATASETS_PORT": str(ports.datasets),
        "WB_INFERENCE_PORT": str(ports.inference),
        "WB_ANNOTATIONS_PORT": str(ports.annotations),
        "WB_GATEWAY_PORT": str(ports.gateway),
        "WB_DATASETS_METRICS_PORT": str(ports.datasets_metrics),
        "WB_INFERENCE_METRICS_PORT": str(ports.inference_metrics),
        "WB_ANNOTATIONS_METRICS_PORT": str(ports.annotations_metrics),
        "WB_WORKER_METRICS_PORT": str(ports.worker_metrics),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "devstack", "run"], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if "The workbench is running" in line:
                break
        else:
            code = process.wait()
            logs = "".join(
                f"\n--- {log.name} (last lines)\n" + "\n".join(log.read_text(errors="replace").splitlines()[-15:])
                for log in sorted((tmp_path / "var").rglob("*.log"))
            )
            pytest.fail(f"make run never printed its URL (exit code {code}){logs}")
        yield process, ports
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def wait_until_gone(pids: set[int]) -> set[int]:
    deadline = time.monotonic() + STOP_WITHIN_S
    while alive(pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive(pids)


def busy_ports(ports: StackPorts) -> list[int]:
    return [port for port in vars(ports).values() if not port_is_free(port)]


def test_sigterm_stops_every_process_within_ten_seconds(launcher: tuple[subprocess.Popen[str], StackPorts]) -> None:
    process, ports = launcher
    children = descendants(process.pid)
    assert len(children) >= 7  # nats-server, three services, the worker, the gateway, the guardian

    process.send_signal(signal.SIGTERM)

    assert wait_until_gone({process.pid, *children}) == set()
    assert process.wait() == 0
    assert busy_ports(ports) == []


def test_a_launcher_killed_outright_leaves_no_child_holding_a_port(
    launcher: tuple[subprocess.Popen[str], StackPorts],
) -> None:
    process, ports = launcher
    children = descendants(process.pid)

    process.kill()
    process.wait()

    assert wait_until_gone(children) == set()
    assert busy_ports(ports) == []
