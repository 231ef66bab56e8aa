"""Three nats-servers forming one JetStream cluster on loopback (`python -m devstack run --cluster`).

Each server has a name (n1, n2, n3), a client port, a route port, a monitoring port and a store
dir of its own under <root>/<name>, and routes to the other two. Clients get all three client URLs
(WB_NATS_URL holds them comma-separated) and move to another server when theirs goes away.
"""

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import nats
from nats.js.errors import NoStreamResponseError

from devstack.natsserver import ClusterRoutes, NatsServer, free_port
from eventlog import nats_servers

CLUSTER_NAME = "wb"
SIZE = 3
FORM_TIMEOUT_S = 60.0  # the servers elect a JetStream meta leader within seconds on loopback


@dataclass(frozen=True)
class ClusterPorts:
    client: tuple[int, ...]
    routes: tuple[int, ...]
    monitor: tuple[int, ...]

    @classmethod
    def free(cls, size: int = SIZE) -> "ClusterPorts":
        return cls(*(tuple(free_port() for _ in range(size)) for _ in range(3)))

    @classmethod
    def from_base(cls, base: int, size: int = SIZE) -> "ClusterPorts":
        """`make run-cluster`'s ports: client ports base..base+2, routes base+10.., monitoring base+20..."""
        return cls(*(tuple(base + offset + i for i in range(size)) for offset in (0, 10, 20)))


@dataclass
class NatsCluster:
    """The servers of one JetStream cluster, each started, killed and started again by name."""

    root: Path
    ports: ClusterPorts = field(default_factory=ClusterPorts.free)
    sync: str = "default"
    servers: dict[str, NatsServer] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for i, port in enumerate(self.ports.client):
            name = f"n{i + 1}"
            peers = tuple(p for j, p in enumerate(self.ports.routes) if j != i)
            self.servers[name] = NatsServer(
                self.root / name,
                port=port,
                sync=self.sync,
                name=name,
                cluster=ClusterRoutes(CLUSTER_NAME, self.ports.routes[i], peers),
                monitor_port=self.ports.monitor[i],
            )

    @property
    def url(self) -> str:
        """Every server's client URL, comma-separated (what WB_NATS_URL takes)."""
        return ",".join(server.url for server in self.servers.values())

    def running(self, name: str) -> bool:
        process = self.servers[name].process
        return process is not None and process.poll() is None

    def start(self, timeout: float = FORM_TIMEOUT_S) -> "NatsCluster":
        """Starts every server not running, then waits until the cluster has a JetStream meta leader."""
        for name, server in self.servers.items():
            if not self.running(name):
                server.start()
        self.wait_formed(timeout)
        return self

    def start_server(self, name: str) -> NatsServer:
        """Starts one server again on its ports and store (it rejoins and catches up from its peers)."""
        return self.servers[name].start()

    def stop(self, kill: bool = False) -> None:
        for server in self.servers.values():
            server.stop(kill=kill)

    def wait_formed(self, timeout: float = FORM_TIMEOUT_S) -> None:
        asyncio.run(self._wait_formed(time.monotonic() + timeout))

    async def _wait_formed(self, deadline: float) -> None:
        nc = await nats.connect(nats_servers(self.url), connect_timeout=2, max_reconnect_attempts=-1)
        try:
            js = nc.jetstream(timeout=2)
            while True:
                try:
                    await js.account_info()
                    return
                except (NoStreamResponseError, nats.errors.Error, TimeoutError):
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"the NATS cluster at {self.url} formed no JetStream in time") from None
                    await asyncio.sleep(0.2)
        finally:
            await nc.close()

    def stream_state(self, name: str, stream: str) -> dict[str, Any] | None:
        """The stream's state as this server holds it (its own replica: messages, bytes, first and
        last sequence), from its monitoring endpoint; None when it holds no replica."""
        port = self.servers[name].monitor_port
        reply = httpx.get(f"http://127.0.0.1:{port}/jsz", params={"streams": "true"}, timeout=5)
        reply.raise_for_status()
        for account in reply.json().get("account_details") or []:
            for detail in account.get("stream_detail") or []:
                if detail["name"] == stream:
                    return dict(detail["state"])
        return None


async def stream_leader(url: str, stream: str, within_s: float = 30.0) -> str:
    """The name of the server leading the stream, as the cluster answers; asked again while it elects
    one (right after its leader went away the stream answers nothing, or names no leader)."""
    deadline = time.monotonic() + within_s
    nc = await nats.connect(nats_servers(url), connect_timeout=2)
    try:
        while True:
            try:
                info = await nc.jetstream(timeout=2).stream_info(stream)
            except (nats.errors.TimeoutError, nats.errors.NoRespondersError, NoStreamResponseError):
                info = None
            if info is not None and info.cluster is not None and info.cluster.leader:
                return info.cluster.leader
            if time.monotonic() > deadline:
                raise RuntimeError(f"stream {stream} had no leader within {within_s:.0f} s")
            await asyncio.sleep(0.2)
    finally:
        await nc.close()
