"""The guardian: makes sure no process of a stack outlives the launcher that started it.

The launcher (make run, a test session) starts one guardian and tells it, through a pipe, the
process group of every child it starts ("+<pgid>") and lets go of ("-<pgid>"). When the pipe
closes, because the launcher stopped cleanly or because it was killed (SIGKILL included, which
nothing in the launcher can catch), the guardian stops every group still listed: SIGTERM, then
SIGKILL after a grace period. Each child leads its own group, so whatever it started (vLLM's engine
processes) goes with it.

Guardian.start() runs main() in a process of its own, reading the pipe on its stdin.
"""

import contextlib
import os
import signal
import subprocess
import sys
import time
from typing import IO

GRACE_S = 5.0


class Guardian:
    """The launcher's end of the pipe."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self._pipe: IO[bytes] | None = None

    def start(self) -> "Guardian":
        if self._process is None:
            self._process = subprocess.Popen(
                # Not `-m devstack.guardian`: the package imports this module first, and runpy warns.
                [sys.executable, "-c", "import sys; from devstack.guardian import main; sys.exit(main())"],
                stdin=subprocess.PIPE,
                start_new_session=True,  # Ctrl-C at the terminal must not stop it before its work
            )
            self._pipe = self._process.stdin
        return self

    def watch(self, pgid: int) -> None:
        self._send(f"+{pgid}")

    def release(self, pgid: int) -> None:
        self._send(f"-{pgid}")

    def close(self) -> None:
        """Lets the guardian go (it stops whatever is still watched, then exits)."""
        if self._pipe is not None:
            with contextlib.suppress(OSError):
                self._pipe.close()
            self._pipe = None
        if self._process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=GRACE_S + 5)
            self._process = None

    def _send(self, line: str) -> None:
        if self._pipe is not None:
            self._pipe.write(f"{line}\n".encode())
            self._pipe.flush()


def stop_groups(pgids: set[int], grace_s: float = GRACE_S) -> None:
    """SIGTERM to every group, then SIGKILL to those still there after grace_s."""
    alive = {pgid for pgid in pgids if _signal(pgid, signal.SIGTERM)}
    deadline = time.monotonic() + grace_s
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = {pgid for pgid in alive if _signal(pgid, 0)}
    for pgid in alive:
        _signal(pgid, signal.SIGKILL)


def _signal(pgid: int, signum: int) -> bool:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # only the pipe's end tells it to act
    watched: set[int] = set()
    for line in sys.stdin.buffer:
        text = line.decode().strip()
        if text.startswith("+"):
            watched.add(int(text[1:]))
        elif text.startswith("-"):
            watched.discard(int(text[1:]))
    stop_groups(watched)
    return 0


if __name__ == "__main__":
    sys.exit(main())
