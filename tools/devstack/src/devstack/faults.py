"""Faults injected into a running Stack by the fault suite (tests/faults, bench/faults.py).

A process of the stack is killed with `stack.stop((name,), kill=True)` and started again with
`stack.start((name,))`. nats-server is no process of PROCESSES (the stack stops it only last, with
everything), so killing it, starting it again on the same port and store, freezing and thawing it
are here.
"""

import contextlib
import os
import signal
import time
from pathlib import Path

from devstack.stack import Stack


def _nats_pid(stack: Stack) -> int:
    if stack.nats is None or stack.nats.process is None or stack.nats.process.poll() is not None:
        raise RuntimeError("nats-server of this stack is not running")
    return stack.nats.process.pid


def kill_nats(stack: Stack) -> None:
    """SIGKILLs nats-server: what it had written stays in its store (as after a crash, not a power cut)."""
    pid = _nats_pid(stack)
    assert stack.nats is not None
    stack.nats.stop(kill=True)
    stack.guardian.release(pid)


def restart_nats(stack: Stack) -> None:
    """Starts nats-server again on the stack's port and store (JetStream recovers its streams from it)."""
    stack.start_nats()


def freeze(pid: int, within_s: float = 5.0) -> None:
    """SIGSTOPs a process and returns once the kernel shows it stopped: kill() returns before a
    process running on the other core has stopped, and what it answers meanwhile still gets out."""
    os.kill(pid, signal.SIGSTOP)
    stat = Path(f"/proc/{pid}/stat")
    deadline = time.monotonic() + within_s
    # The state is the first field after the parenthesised command name.
    while stat.read_text().rpartition(")")[2].split()[0] not in ("T", "t"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"process {pid} did not stop within {within_s:g} s of SIGSTOP")
        time.sleep(0.001)


def thaw(pid: int) -> None:
    """Continues a frozen process (SIGCONT); nothing if it is gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGCONT)


def freeze_nats(stack: Stack) -> int:
    """Stops nats-server with SIGSTOP (its sockets stay open, it answers nothing); returns the pid
    to hand to thaw_nats."""
    pid = _nats_pid(stack)
    freeze(pid)
    return pid


def thaw_nats(pid: int) -> None:
    """Continues a frozen nats-server (SIGCONT)."""
    thaw(pid)
