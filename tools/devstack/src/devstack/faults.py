"""Faults injected into a running Stack by the fault suite (tests/faults, bench/faults.py).

A process of the stack is killed with `stack.stop((name,), kill=True)` and started again with
`stack.start((name,))`. nats-server is no process of PROCESSES (the stack stops it only last, with
everything), so killing it, starting it again on the same port and store, freezing and thawing it
are here.
"""

import contextlib
import os
import signal

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


def freeze_nats(stack: Stack) -> int:
    """Stops nats-server with SIGSTOP (its sockets stay open, it answers nothing); returns the pid
    to hand to thaw_nats."""
    pid = _nats_pid(stack)
    os.kill(pid, signal.SIGSTOP)
    return pid


def thaw_nats(pid: int) -> None:
    """Continues a frozen nats-server (SIGCONT)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGCONT)
