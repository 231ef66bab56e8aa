"""Wires the datasets service together: the one place that builds its dependencies.

`python -m datasets_service` and the integration tests both start the service through start().
"""

import asyncio
import logging
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health
from sqlalchemy import Engine

from datasets_service.adapters.object_store import DatasetFiles
from datasets_service.adapters.read_model import DatasetQueries, make_engine
from datasets_service.adapters.record_cache import RecordCache
from datasets_service.application import DatasetsApplication
from datasets_service.config import Settings
from datasets_service.grpc.servicer import ERROR_MAP, SERVICE_NAME, register
from datasets_service.projector import projection_runner
from eventlog import EventLog, ProjectionRunner
from eventlog.serving import start_server

log = logging.getLogger(__name__)


@dataclass
class RunningService:
    """A started datasets service: its gRPC server, its projector task and what they use."""

    settings: Settings
    events: EventLog
    engine: Engine
    runner: ProjectionRunner
    projector: "asyncio.Task[None]"
    app: DatasetsApplication
    server: grpc.aio.Server
    health: health.aio.HealthServicer

    async def stop(self, grace: float = 5.0) -> None:
        """Stops taking calls, lets running ones finish (up to grace seconds), then lets go of NATS."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        await _cancel(self.projector)
        await self.events.close()
        self.engine.dispose()


async def start(settings: Settings) -> RunningService:
    """Connects to NATS, brings the read model up to date, and starts serving on settings.address."""
    events = await EventLog.connect(settings.nats_url, stream=settings.event_stream, name="datasets-service")
    engine = make_engine(settings.db_url)
    projector: asyncio.Task[None] | None = None
    try:
        await events.ensure_stream()
        runner = projection_runner(events, engine)
        await runner.catch_up()
        projector = asyncio.create_task(runner.run(), name="datasets-projector")
        files = await DatasetFiles.open(events.js)
        app = DatasetsApplication(
            events,
            runner,
            DatasetQueries(engine),
            files,
            RecordCache(settings.cache_bytes),
            settings.max_upload_bytes,
        )
        server, health_servicer = await start_server(settings.address, register(app), [SERVICE_NAME], ERROR_MAP)
    except BaseException:
        if projector is not None:
            await _cancel(projector)
        await events.close()
        engine.dispose()
        raise
    return RunningService(settings, events, engine, runner, projector, app, server, health_servicer)


async def _cancel(task: "asyncio.Task[None]") -> None:
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    except Exception as error:  # a failure it had already (the service logs it), or one while stopping
        log.warning("the datasets projector did not stop cleanly: %r", error)
