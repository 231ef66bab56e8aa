"""The one place where the API and the worker are wired from their settings."""

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass

import grpc

from eventlog import EventLog, ProjectionRunner
from eventlog.serving import run_until_stopped, start_server
from inference_service.adapters.datasets_client import DatasetsClient
from inference_service.adapters.models_file import load_models
from inference_service.adapters.read_model import RunsReadModel
from inference_service.adapters.run_log import RunLog
from inference_service.adapters.work_queue import WorkQueue
from inference_service.application import InferenceApplication
from inference_service.config import Settings, WorkerSettings, apply_vllm_defaults
from inference_service.domain.errors import InvalidInput
from inference_service.domain.state import progress_subject
from inference_service.engines import EngineCache
from inference_service.grpc.servicer import ERROR_MAP, SERVICE_NAME, InferenceServicer
from inference_service.live_progress import ProgressBoard
from inference_service.projector import database, rebuild, runs_runner
from inference_service.shard import ShardJob
from inference_service.worker import Worker
from workbench.inference.v1 import inference_pb2 as pb
from workbench.inference.v1 import inference_pb2_grpc

log = logging.getLogger("inference_service")


@dataclass
class RunningApi:
    """A started inference API: its gRPC server, its projector task, and what they use."""

    settings: Settings
    events: EventLog
    runner: ProjectionRunner
    projector: "asyncio.Task[None]"
    datasets: DatasetsClient
    app: InferenceApplication
    server: grpc.aio.Server

    async def stop(self, grace: float = 5.0) -> None:
        """Stops taking calls, lets running ones finish (up to grace seconds), then lets go of NATS."""
        await self.server.stop(grace)
        self.projector.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.projector
        await self.datasets.close()
        await self.events.close()
        self.runner.engine.dispose()


async def start_api(settings: Settings) -> RunningApi:
    """Loads the models file, brings the read model up to date and serves on settings.inference_addr."""
    models = load_models(settings.models_file)
    events = await EventLog.connect(settings.nats_url, settings.event_stream, name="inference")
    await events.ensure_stream()
    queue = WorkQueue(events.nc)
    await queue.ensure_stream()
    engine = database(settings.db_url)
    runner = runs_runner(events, engine)
    await runner.catch_up()
    projector = asyncio.create_task(runner.run(), name="inference-projector")
    datasets = DatasetsClient(settings.datasets_addr)
    app = InferenceApplication(
        models, RunLog(events), queue, datasets, runner, RunsReadModel(engine), shard_size=settings.shard_size
    )
    requeued = await app.requeue_queued_runs()
    if requeued:
        log.info("enqueued the shards of %d queued runs again", requeued)
    server, _ = await start_server(
        settings.inference_addr,
        lambda server: inference_pb2_grpc.add_InferenceServiceServicer_to_server(InferenceServicer(app), server),
        [SERVICE_NAME],
        ERROR_MAP,
    )
    log.info("listening on %s (%d models)", settings.inference_addr, len(models))
    return RunningApi(settings, events, runner, projector, datasets, app, server)


async def serve(settings: Settings) -> int:
    """Runs the inference API until SIGTERM or SIGINT (or until its projector fails: 1)."""
    api = await start_api(settings)
    return await run_until_stopped(api.projector, api.stop)


async def work(settings: WorkerSettings) -> None:
    """Runs an inference worker until SIGTERM or SIGINT."""
    apply_vllm_defaults()
    specs = {spec.model_id: spec for spec in load_models(settings.models_file)}
    served = list(settings.models) or [spec.model_id for spec in specs.values() if spec.backend == "vllm"]
    unknown = [model_id for model_id in served if model_id not in specs]
    if unknown or not served:
        raise InvalidInput(
            f"WB_WORKER_MODELS names {', '.join(unknown) or 'no model'}; {settings.models_file} declares "
            f"{', '.join(specs) or 'none'}"
        )
    events = await EventLog.connect(settings.nats_url, settings.event_stream, name=f"worker {settings.worker_name}")
    await events.ensure_stream()
    queue = WorkQueue(events.nc)
    await queue.ensure_stream()
    datasets = DatasetsClient(settings.datasets_addr)
    runs = RunLog(events)
    engines = EngineCache({model_id: specs[model_id] for model_id in served}, settings.engine_options)

    async def publish(progress: pb.RunProgress) -> None:
        await events.nc.publish(progress_subject(progress.run_id), progress.SerializeToString())

    job = ShardJob(runs, datasets, engines, ProgressBoard(publish, runs.count_results), settings.worker_name)
    worker = Worker(served, queue, job, engines, settings.max_shards, settings.ack_wait_s, settings.max_deliver)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    log.info("worker %s starting", settings.worker_name)
    try:
        await worker.run(stop)
    finally:
        await datasets.close()
        await events.close()
    log.info("worker %s stopped", settings.worker_name)


async def rebuild_read_model(settings: Settings) -> int:
    events = await EventLog.connect(settings.nats_url, settings.event_stream, name="inference rebuild")
    try:
        return await rebuild(events, database(settings.db_url))
    finally:
        await events.close()
