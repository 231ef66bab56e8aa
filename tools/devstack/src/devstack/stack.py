"""The workbench as a tree of local processes on loopback.

nats-server (JetStream under <var>/nats), the datasets, inference and annotations services, one
inference worker and the gateway. Each logs to <var>/logs/<name>.log. The same class serves
`make run` and the end-to-end tests, which stop, kill and restart single processes.

With a cluster (devstack/cluster.py, `make run-cluster`) three nats-servers under <var>/nats/n1..n3
take the one server's place, the processes get all three URLs and WB_STREAM_REPLICAS=3, and
extra_workers adds inference workers (worker-2, ...) with settings of their own (WB_WORKER_MODELS).

Every child leads its own process group, watched by a guardian process (guardian.py): however the
launcher ends, SIGKILL included, no child survives it to hold a port.
"""

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

from devstack.cluster import NatsCluster
from devstack.guardian import Guardian
from devstack.natsserver import NatsServer, PortInUse, free_port, port_is_free
from devstack.settings import DevstackSettings

SERVICES = ("datasets", "inference", "annotations")
PROCESSES = (*SERVICES, "worker", "gateway")
SERVICES_NICE = 10  # the services and the gateway run this much nicer than the worker (WB_SERVICES_NICE)
METERED = (*SERVICES, "worker")  # the processes that serve /metrics on a port of their own
STOP_GRACE_S = 8.0  # SIGTERM, then SIGKILL: the whole stack is down within 10 s


@dataclass(frozen=True)
class StackPorts:
    nats: int
    datasets: int
    inference: int
    annotations: int
    gateway: int
    datasets_metrics: int = 0
    inference_metrics: int = 0
    annotations_metrics: int = 0
    worker_metrics: int = 0

    @classmethod
    def free(cls) -> "StackPorts":
        return cls(*(free_port() for _ in range(9)))

    @classmethod
    def from_settings(cls, settings: DevstackSettings) -> "StackPorts":
        """`make run`'s ports: WB_NATS_PORT (4223; 4222 is often a system NATS), 50051-50053, 4080, 9151-9154."""
        return cls(
            nats=settings.nats_port,
            datasets=settings.datasets_port,
            inference=settings.inference_port,
            annotations=settings.annotations_port,
            gateway=settings.gateway_port,
            datasets_metrics=settings.datasets_metrics_port,
            inference_metrics=settings.inference_metrics_port,
            annotations_metrics=settings.annotations_metrics_port,
            worker_metrics=settings.worker_metrics_port,
        )


@dataclass
class Stack:
    repo: Path
    var: Path
    ports: StackPorts
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    models_file: Path | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    services_nice: int = SERVICES_NICE
    nats_sync: str = "default"  # JetStream's sync_interval (WB_NATS_SYNC): default, always or a duration
    cluster: NatsCluster | None = None
    extra_workers: dict[str, dict[str, str]] = field(default_factory=dict)  # "worker-2" -> its own settings
    nats: NatsServer | None = None
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    guardian: Guardian = field(default_factory=Guardian)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports.gateway}"

    def login_link(self, name: str = "admin") -> str:
        """A one-time link that logs a browser in as the user (default: the bootstrap admin)."""
        response = httpx.post(
            f"{self.url}/admin/users/{name}/login-link", headers={"Authorization": f"Bearer {self.token}"}, timeout=30
        )
        response.raise_for_status()
        return str(response.json()["url"])

    @property
    def nats_url(self) -> str:
        """The NATS server's URL; a cluster's servers' URLs, comma-separated."""
        if self.cluster is not None:
            return self.cluster.url
        return f"nats://127.0.0.1:{self.ports.nats}"

    @property
    def process_names(self) -> tuple[str, ...]:
        """PROCESSES, with the extra workers after the first."""
        return (*SERVICES, "worker", *self.extra_workers, "gateway")

    def db_path(self, service: str) -> Path:
        return self.var / "db" / f"{service}.db"

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """The children's environment: the launcher's own (base), where the stack's addresses and
        token replace any the user set, while the read-model databases default to SQLite files
        under <var>/db only where the user named none (Postgres read models work under make run)."""
        env = dict(os.environ if base is None else base)
        env.update(
            {
                "WB_NATS_URL": self.nats_url,
                "WB_DATASETS_ADDR": f"127.0.0.1:{self.ports.datasets}",
                "WB_INFERENCE_ADDR": f"127.0.0.1:{self.ports.inference}",
                "WB_ANNOTATIONS_ADDR": f"127.0.0.1:{self.ports.annotations}",
                "WB_GATEWAY_HOST": "127.0.0.1",
                "WB_GATEWAY_PORT": str(self.ports.gateway),
                "WB_API_TOKEN": self.token,
                "WB_FRONTEND_DIR": str(self.repo / "frontend"),
                "PYTHONUNBUFFERED": "1",
            }
        )
        if self.cluster is not None:
            env["WB_STREAM_REPLICAS"] = str(len(self.cluster.servers))
        for name in METERED:
            port = getattr(self.ports, f"{name}_metrics")
            env[f"WB_{name.upper()}_METRICS_ADDR"] = f"127.0.0.1:{port}" if port else "off"
        for service in SERVICES:
            env.setdefault(f"WB_{service.upper()}_DB_URL", f"sqlite:///{self.db_path(service)}")
        if self.models_file is not None:
            env["WB_MODELS_FILE"] = str(self.models_file)
        env.update(self.extra_env)
        return env

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, names: tuple[str, ...] | None = None, timeout: float = 120.0) -> "Stack":
        """Starts nats-server (or the cluster's servers) if needed, then the named processes (default:
        all), and waits until they are healthy."""
        names = self.process_names if names is None else names
        (self.var / "logs").mkdir(parents=True, exist_ok=True)
        (self.var / "db").mkdir(parents=True, exist_ok=True)
        for name in names:  # all before anything starts: a busy port should leave nothing behind
            self._check_port(name)
        self.guardian.start()
        if self.cluster is not None:
            self.start_cluster()
        elif self.nats is None or self.nats.process is None or self.nats.process.poll() is not None:
            self.start_nats()
        for name in names:
            self.processes[name] = self._spawn(name)
            self.guardian.watch(self.processes[name].pid)
        deadline = time.monotonic() + timeout
        for name in names:
            self._wait_healthy(name, deadline)
        return self

    def start_nats(self) -> None:
        self.nats = NatsServer(self.var / "nats", port=self.ports.nats, sync=self.nats_sync).start()
        assert self.nats.process is not None
        self.guardian.watch(self.nats.process.pid)

    def start_cluster(self, timeout: float = 60.0) -> None:
        """Starts the cluster's servers that are not running and waits until it has formed."""
        assert self.cluster is not None
        stopped = [name for name in self.cluster.servers if not self.cluster.running(name)]
        self.cluster.start(timeout)
        for name in stopped:
            process = self.cluster.servers[name].process
            assert process is not None
            self.guardian.watch(process.pid)

    def kill_nats_server(self, name: str) -> None:
        """kill -9 of one server of the cluster (its store stays, as after a crash)."""
        assert self.cluster is not None
        process = self.cluster.servers[name].process
        if process is None or process.poll() is not None:
            raise RuntimeError(f"nats-server {name} is not running")
        self.cluster.servers[name].stop(kill=True)
        self.guardian.release(process.pid)

    def start_nats_server(self, name: str) -> None:
        """Starts one server of the cluster again on its ports and store."""
        assert self.cluster is not None
        process = self.cluster.start_server(name).process
        assert process is not None
        self.guardian.watch(process.pid)

    def stop(self, names: tuple[str, ...] | None = None, kill: bool = False) -> None:
        """Stops the named processes (default: all, then nats-server), gracefully unless kill.

        All at once: SIGTERM to each, up to STOP_GRACE_S for all of them together, then SIGKILL.
        """
        chosen = list(self.process_names) if names is None else list(names)
        stopping = {name: proc for name in chosen if (proc := self.processes.pop(name, None)) is not None}
        for proc in stopping.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for proc in stopping.values():
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.01))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        # Each process leads its own process group (start_new_session): whatever it spawned and
        # left behind (vLLM's engine core outlives a SIGKILLed worker) goes with it, as it would
        # with its container.
        for proc in stopping.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            self.guardian.release(proc.pid)
        if names is None:
            servers = [self.nats] if self.nats is not None else []
            servers += list(self.cluster.servers.values()) if self.cluster is not None else []
            for server in servers:
                if server.process is not None:
                    self.guardian.release(server.process.pid)
                server.stop(kill=kill)
        if names is None:
            self.guardian.close()

    def running(self, name: str) -> bool:
        proc = self.processes.get(name)
        return proc is not None and proc.poll() is None

    def log(self, name: str) -> str:
        path = self.var / "logs" / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # -- internals -------------------------------------------------------------------------

    def _port_of(self, name: str) -> int | None:
        return getattr(self.ports, name, None)

    def _check_port(self, name: str) -> None:
        for port_name in (name, f"{name}_metrics"):
            port = self._port_of(port_name)
            if port and not port_is_free(port):
                variable = f"WB_{port_name.upper()}_PORT"
                raise PortInUse(f"{name}: port {port} on 127.0.0.1 is already in use; set {variable} to a free port")

    def _command(self, name: str) -> list[str]:
        python = sys.executable
        if name.startswith("worker"):
            return [python, "-m", "inference_service", "worker"]
        if name == "inference":
            return [python, "-m", "inference_service", "serve"]
        if name == "gateway":
            return [python, "-m", "gateway"]
        return [python, "-m", f"{name}_service"]

    def _spawn(self, name: str) -> subprocess.Popen[bytes]:
        env = self.env()
        if name in self.extra_workers:
            env["WB_WORKER_METRICS_ADDR"] = "off"  # the first worker's port is taken
            env.update(self.extra_workers[name])
        log = open(self.var / "logs" / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
        process = subprocess.Popen(
            self._command(name),
            cwd=self.repo,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the launcher only; it stops children in order
        )
        if not name.startswith("worker") and self.services_nice:
            # On one machine the engine is what limits throughput, and its threads stall whenever
            # another process takes their core; the services' short bursts can wait milliseconds.
            os.setpriority(os.PRIO_PROCESS, process.pid, os.getpriority(os.PRIO_PROCESS, 0) + self.services_nice)
        return process

    def _wait_healthy(self, name: str, deadline: float) -> None:
        while time.monotonic() < deadline:
            proc = self.processes[name]
            if proc.poll() is not None:
                tail = "\n".join(self.log(name).splitlines()[-30:])
                raise RuntimeError(f"{name} exited with code {proc.returncode} at start:\n{tail}")
            if self._healthy(name):
                return
            time.sleep(0.2)
        raise TimeoutError(f"{name} was not healthy in time; see {self.var / 'logs' / (name + '.log')}")

    def _healthy(self, name: str) -> bool:
        if name.startswith("worker"):
            return "worker pulling shards" in self.log(name)
        if name == "gateway":
            try:
                return httpx.get(f"{self.url}/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False
        port = self._port_of(name)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            try:
                reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
            except grpc.RpcError:
                return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)
