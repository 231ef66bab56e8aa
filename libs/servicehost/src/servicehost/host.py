"""One lifecycle for every workbench process: connect, catch up, run projectors, serve, stop.

    async with ServiceHost.starting("datasets", settings) as host:  # event store, read-model database
        runner = host.project(DatasetsProjection())                  # a read model, fed from the log
        await host.catch_up()                                        # reads see everything stored so far
        ... build the application on host.store, runner, host.database, host.clock ...
        await host.start(DatasetServicer(app))                       # projectors, gRPC, metrics
    exit_code = await host.run_until_signalled()                     # SIGTERM/SIGINT: graceful stop

Tests pass an InMemoryEventStore as store, and stop the host themselves.
"""

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar
from wsgiref.simple_server import WSGIServer

from nats.aio.client import Client as NatsClient
from nats.js.errors import APIError
from sqlalchemy import Engine

from eventlog import (
    EventStore,
    JetStreamEventStore,
    Projection,
    ProjectionRunner,
    ProjectionStatus,
    StreamSettings,
    patiently,
    replica_mismatch,
)
from eventlog.tasks import cancel_and_wait
from servicehost import metrics
from servicehost.clock import Clock, utc_now
from servicehost.database import create_engine
from servicehost.grpc_server import GrpcServer, GrpcService, start_grpc_server
from servicehost.metered import MeteredEventStore
from servicehost.operations import OperationsServicer
from servicehost.settings import ProcessSettings, ServiceSettings

log = logging.getLogger(__name__)

App = TypeVar("App")

# nats-server's answer to a stream asked for more replicas than one server can hold.
_REPLICAS_NEED_A_CLUSTER = 10074


class ServiceHost:
    """A process's connections and tasks, started and stopped in one order."""

    def __init__(
        self,
        name: str,
        settings: ProcessSettings,
        store: EventStore,
        engine: Engine | None = None,
        jetstream: JetStreamEventStore | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.name = name
        self.settings = settings
        self.store: EventStore = MeteredEventStore(store)
        self.clock = clock
        self.runners: dict[str, ProjectionRunner] = {}
        self.metrics_port: int | None = None
        self.storage_warnings: list[str] = []  # streams whose replicas differ from the settings
        self._engine = engine
        self._jetstream = jetstream
        self._tasks: list[asyncio.Task[None]] = []
        self._closers: list[Callable[[], Awaitable[object]]] = []
        self._grpc: GrpcServer | None = None
        self._metrics: WSGIServer | None = None
        self._unwatch: Callable[[], None] | None = None
        self._stopped = False

    @classmethod
    async def connect(
        cls, name: str, settings: ProcessSettings, *, store: EventStore | None = None, clock: Clock = utc_now
    ) -> "ServiceHost":
        """Connects to the event log (JetStream at settings.nats_url unless a store is given) and
        opens the read-model database of a service (settings.db_url)."""
        jetstream = None
        if store is None:
            jetstream = await JetStreamEventStore.connect(
                settings.nats_url,
                settings.event_stream,
                name=f"wb-{name}",
                user=settings.nats_user,
                password=settings.nats_password,
            )
            try:
                await jetstream.ensure_stream(StreamSettings(replicas=settings.stream_replicas))
            except APIError as error:
                await jetstream.close()
                raise _storage_error(error, settings) from None
            except BaseException:
                await jetstream.close()
                raise
            store = jetstream
        engine = create_engine(settings.db_url) if isinstance(settings, ServiceSettings) else None
        host = cls(name, settings, store, engine, jetstream, clock)
        if jetstream is not None:
            await host.check_replicas(settings.event_stream)
        return host

    @classmethod
    @contextlib.asynccontextmanager
    async def starting(
        cls, name: str, settings: ProcessSettings, *, store: EventStore | None = None, clock: Clock = utc_now
    ) -> AsyncIterator["ServiceHost"]:
        """connect(), for the block that wires and starts the service: if the block fails, the
        host stops again (nothing is left connected or listening); if it succeeds, it runs on."""
        host = await cls.connect(name, settings, store=store, clock=clock)
        try:
            yield host
        except APIError as error:  # the work queue or the object store could not be created
            await host.stop()
            raise _storage_error(error, settings) from None
        except BaseException:
            await host.stop()
            raise

    @property
    def nats(self) -> NatsClient:
        """The NATS connection (work queues, object store); only on JetStream."""
        if self._jetstream is None:
            raise RuntimeError(f"{self.name} runs on an in-memory event store: there is no NATS connection")
        return self._jetstream.nc

    async def check_replicas(self, *streams: str) -> None:
        """Compares each stream's replicas (the event log, the work queue, the object store's
        stream) with settings.stream_replicas; a difference is logged and kept in storage_warnings,
        which OperationsService and the gateway's /health report. The stream is left as it is."""
        for stream in streams:
            mismatch = await replica_mismatch(self.nats.jetstream(), stream, self.settings.stream_replicas)
            if mismatch is not None:
                log.warning("%s: %s", self.name, mismatch)
                self.storage_warnings.append(str(mismatch))

    @property
    def database(self) -> Engine:
        if self._engine is None:
            raise RuntimeError(f"{self.name} has no read-model database (its settings name no db_url)")
        return self._engine

    def project(self, projection: Projection, batch_size: int = 500) -> ProjectionRunner:
        """A runner that keeps the projection's tables in the read-model database up to date."""
        runner = ProjectionRunner(self.store, self.database, projection, batch_size=batch_size)
        self.runners[projection.name] = runner
        return runner

    async def catch_up(self) -> None:
        """Applies every event stored so far to every projection. A catch-up that nats-server leaves
        unanswered (its consumer's creation, or a message) is started again from the checkpoint, for
        up to a minute, as the streams' set-up is (eventlog.patiently)."""
        for runner in self.runners.values():
            position = await patiently(runner.catch_up, f"{runner.name} catching up")
            log.info("%s: %s caught up to sequence %d", self.name, runner.name, position)

    def close_on_stop(self, closer: Callable[[], Awaitable[object]]) -> None:
        """Something to close when the host stops (a channel, a client, a worker loop to drain).

        Closers run after the gRPC server and the projectors have stopped, before the event store
        closes, the last registered first: register what still needs a connection after it.
        """
        self._closers.append(closer)

    async def start(self, *servicers: object) -> None:
        """Follows the log with every projection, serves the servicers (and OperationsService) on
        settings.address, and serves metrics on settings.metrics_addr."""
        services = [s if isinstance(s, GrpcService) else GrpcService.of(s) for s in servicers]
        for runner in self.runners.values():
            self._tasks.append(asyncio.create_task(runner.run(), name=f"{self.name}: {runner.name}"))
        self._unwatch = metrics.watch_projections(self.statuses)
        served = metrics.serve_metrics(self.settings.metrics_addr)
        if served is not None:
            self._metrics, self.metrics_port = served
        if services:
            if not isinstance(self.settings, ServiceSettings):
                raise TypeError(f"{self.name} serves gRPC but its settings name no address")
            every = [
                *services,
                GrpcService.of(OperationsServicer(self.name, lambda: self.runners, lambda: self.storage_warnings)),
            ]
            self._grpc = await start_grpc_server(self.settings.address, every)
            log.info("%s: listening on %s", self.name, self.settings.address)

    def statuses(self) -> list[ProjectionStatus]:
        return [runner.status() for runner in self.runners.values()]

    async def stop(self, grace: float = 5.0) -> None:
        """Stops taking calls and lets running ones finish (up to grace seconds), then stops the
        projectors and lets go of everything. Safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        if self._grpc is not None:
            await self._grpc.stop(grace)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            await cancel_and_wait(task)
            if not task.cancelled() and task.exception() is not None:  # a failure it already had (logged)
                log.warning("%s: %s did not stop cleanly: %r", self.name, task.get_name(), task.exception())
        for closer in reversed(self._closers):
            try:
                await closer()
            except Exception:
                log.warning("%s: closing a connection failed", self.name, exc_info=True)
        if self._unwatch is not None:
            self._unwatch()
        if self._metrics is not None:
            self._metrics.shutdown()
            self._metrics.server_close()
        with contextlib.suppress(Exception):  # the connection may already be gone
            await self.store.close()
        if self._engine is not None:
            self._engine.dispose()

    async def run_until_signalled(self, *also: "asyncio.Task[object]") -> int:
        """Runs until SIGTERM or SIGINT (exit code 0), or until a projector or one of the `also`
        tasks ends (1: a stale read model or a dead worker loop is a failure for the supervisor,
        Kubernetes or `make run`, to restart), then stops gracefully."""
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        signalled = asyncio.create_task(stopping.wait())
        watched: set[asyncio.Task[object]] = {signalled, *self._tasks, *also}
        try:
            await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
        failed = not signalled.done()
        if failed:
            ended = next(task for task in watched if task.done())
            log.error("%s: %s ended; shutting down", self.name, ended.get_name())
        signalled.cancel()
        log.info("%s: stopping", self.name)
        await self.stop()
        return 1 if failed else 0


def _storage_error(error: APIError, settings: ProcessSettings) -> Exception:
    """A stream that cannot be created as the settings ask, in the settings' words."""
    if error.err_code == _REPLICAS_NEED_A_CLUSTER:
        return RuntimeError(
            f"WB_STREAM_REPLICAS={settings.stream_replicas} needs a NATS cluster, but {settings.nats_url} is "
            f"one server ({error.description}): set WB_STREAM_REPLICAS=1, or point WB_NATS_URL at a cluster"
        )
    return error


@dataclass
class Running(Generic[App]):
    """A started service: its host and its application (what tests talk to)."""

    host: ServiceHost
    app: App

    async def stop(self, grace: float = 5.0) -> None:
        await self.host.stop(grace)

    def runner(self, name: str | None = None) -> ProjectionRunner:
        """A projection's runner (the only one when name is None)."""
        if name is None:
            (only,) = self.host.runners.values()
            return only
        return self.host.runners[name]
