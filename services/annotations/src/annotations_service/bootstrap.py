"""The one place where the service's parts are wired together (used by __main__ and the tests)."""

import asyncio
import logging
from dataclasses import dataclass

import grpc
from sqlalchemy import Engine
from sqlmodel import create_engine

from annotations_service.adapters.datasets_client import DatasetsClient
from annotations_service.application import AnnotationsApp
from annotations_service.config import Config
from annotations_service.grpc.servicer import ERROR_MAP, SERVICE_NAME, AnnotationServicer
from annotations_service.projector import projection_runner
from eventlog import EventLog, ProjectionRunner
from eventlog.serving import start_server
from workbench.annotations.v1 import annotations_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)


@dataclass
class RunningService:
    config: Config
    events: EventLog
    engine: Engine
    runner: ProjectionRunner
    projection_task: "asyncio.Task[None]"
    datasets: DatasetsClient
    app: AnnotationsApp
    server: grpc.aio.Server
    stopped: bool = False

    async def stop(self, grace: float = 5.0) -> None:
        """Stops answering (in-flight calls get grace seconds), then the projection and connections."""
        if self.stopped:
            return
        self.stopped = True
        await self.server.stop(grace)
        self.projection_task.cancel()
        try:
            await self.projection_task
        except asyncio.CancelledError:
            pass
        except Exception as error:  # the runner may fail to close its follower while cancelled
            log.warning("the annotations projection did not stop cleanly: %r", error)
        await self.datasets.close()
        await self.events.close()
        self.engine.dispose()


async def start(config: Config) -> RunningService:
    """Connects to the log, catches the read model up, follows it, and starts the gRPC server."""
    config.prepare_db_folder()
    events = await EventLog.connect(config.nats_url, stream=config.event_stream, name="annotations-service")
    await events.ensure_stream()
    engine = create_engine(config.db_url)
    runner = projection_runner(events, engine)
    position = await runner.catch_up()
    log.info("read model caught up to sequence %d", position)
    projection_task = asyncio.create_task(runner.run(), name="annotations-projection")
    datasets = DatasetsClient(config.datasets_address)
    app = AnnotationsApp(events, runner, engine, datasets)
    servicer = AnnotationServicer(app)
    server, _ = await start_server(
        config.address,
        lambda server: pb_grpc.add_AnnotationServiceServicer_to_server(servicer, server),
        [SERVICE_NAME],
        ERROR_MAP,
    )
    log.info("listening on %s", config.address)
    return RunningService(config, events, engine, runner, projection_task, datasets, app, server)
