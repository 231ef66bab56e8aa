"""Wires the inference API and the inference worker together: the one place that builds their dependencies.

`python -m inference_service` and the integration tests start the API through start(), the worker
through work().
"""

import asyncio
import logging
from collections.abc import Mapping

from nats.aio.client import Client as NatsClient

from eventlog import EventStore, Projection
from eventlog.tasks import cancel_and_wait
from inference_service.adapters.cancellations import CancelWatch
from inference_service.adapters.datasets_client import DatasetsClient
from inference_service.adapters.heartbeats import HeartbeatWatch
from inference_service.adapters.models_file import load_models
from inference_service.adapters.read_model import RunsProjection, RunsReadModel
from inference_service.adapters.run_log import RunLog
from inference_service.adapters.work_queue import WorkQueue
from inference_service.application import InferenceApplication
from inference_service.domain.errors import InvalidInput
from inference_service.domain.models import ModelSpec
from inference_service.domain.state import progress_subject
from inference_service.grpc.servicer import InferenceServicer
from inference_service.settings import InferenceSettings, WorkerSettings
from inference_service.worker.engines import EngineCache
from inference_service.worker.loop import Worker
from inference_service.worker.presence import Presence
from inference_service.worker.progress import ProgressBoard, Publish
from inference_service.worker.shard import ShardJob
from servicehost.host import Running, ServiceHost
from workbench.inference.v1 import inference_pb2 as pb

log = logging.getLogger("inference_service")


def projections() -> list[Projection]:
    """The read model's projections (what `rebuild` replays)."""
    return [RunsProjection()]


async def start(settings: InferenceSettings, store: EventStore | None = None) -> Running[InferenceApplication]:
    """Loads the models file, connects to NATS, brings the read model up to date, enqueues again the
    shards of runs a crash left queued, and serves on settings.address."""
    models = load_models(settings.models_file)
    async with ServiceHost.starting("inference", settings, store=store) as host:
        (projection,) = projections()
        runner = host.project(projection)
        await host.catch_up()
        queue = WorkQueue(host.nats)
        await queue.ensure_stream(replicas=settings.stream_replicas)
        await host.check_replicas(queue.stream)
        datasets = DatasetsClient(settings.datasets_addr, settings.rpc_timeout_s)
        host.close_on_stop(datasets.close)
        heartbeats = HeartbeatWatch(host.clock)
        await heartbeats.start(host.nats)
        host.close_on_stop(heartbeats.stop)
        app = InferenceApplication(
            host.store,
            runner,
            RunsReadModel(host.database),
            models,
            queue,
            datasets,
            liveness=heartbeats,
            shard_size=settings.shard_size,
            clock=host.clock,
        )
        requeued = await app.requeue_queued_runs()
        if requeued:
            log.info("enqueued the shards of %d queued runs again", requeued)
        # A StartRun whose append landed after its caller gave up has no shards yet: the reconciler
        # queues them (the queue drops shards it already holds).
        reconciler = asyncio.create_task(app.reconcile(), name="reconciler")

        async def stop_reconciling() -> None:
            await cancel_and_wait(reconciler)

        host.close_on_stop(stop_reconciling)
        await host.start(InferenceServicer(app))
        log.info("%d models in %s", len(models), settings.models_file)
    return Running(host, app)


async def work(settings: WorkerSettings) -> int:
    """Runs an inference worker until SIGTERM or SIGINT (0), or until its loop fails (1).

    On stop, shards in flight get settings.drain_s seconds to finish before they are handed back to
    the queue; then the engines shut down.
    """
    served = served_models(settings)
    async with ServiceHost.starting("inference-worker", settings) as host:
        queue = WorkQueue(host.nats)
        await queue.ensure_stream(replicas=settings.stream_replicas)
        await host.check_replicas(queue.stream)
        datasets = DatasetsClient(settings.datasets_addr, settings.rpc_timeout_s)
        host.close_on_stop(datasets.close)
        runs = RunLog(host.store)
        presence = Presence(host.store, host.nats.publish, settings.worker_name, list(served), host.clock)
        engines = EngineCache(served, settings.engine_options, watcher=presence)
        board = ProgressBoard(_progress_publisher(host.nats), runs.count_results)
        cancellations = CancelWatch()
        await cancellations.start(host.nats)
        host.close_on_stop(cancellations.stop)
        job = ShardJob(
            runs,
            datasets,
            engines,
            board,
            settings.worker_name,
            clock=host.clock,
            watcher=presence,
            generation_timeout_s=settings.generation_timeout_s,
            cancellations=cancellations,
        )
        worker = Worker(
            list(served),
            queue,
            job,
            engines,
            settings.max_shards,
            settings.ack_wait_s,
            settings.max_deliver,
            drain_s=settings.drain_s,
        )
        await host.start()  # no gRPC: metrics only
        await presence.announce()
        stop = asyncio.Event()
        loop = asyncio.create_task(worker.run(stop), name="worker loop")

        async def drain() -> None:
            stop.set()
            await asyncio.wait({loop})
            if not loop.cancelled() and loop.exception() is not None:  # the exit code is already 1
                log.error("the worker loop failed", exc_info=loop.exception())
            await presence.gone()

        # Closed before the datasets channel and the NATS connection, which draining shards still use.
        host.close_on_stop(drain)
    log.info("worker %s starting", settings.worker_name)
    code = await host.run_until_signalled(loop)
    log.info("worker %s stopped", settings.worker_name)
    return code


def served_models(settings: WorkerSettings) -> Mapping[str, ModelSpec]:
    """The models this worker serves (WB_WORKER_MODELS; default: every vllm model of the file)."""
    specs = {spec.model_id: spec for spec in load_models(settings.models_file)}
    served = list(settings.models) or [spec.model_id for spec in specs.values() if spec.backend == "vllm"]
    unknown = [model_id for model_id in served if model_id not in specs]
    if unknown or not served:
        raise InvalidInput(
            f"WB_WORKER_MODELS names {', '.join(unknown) or 'no model'}; {settings.models_file} declares "
            f"{', '.join(specs) or 'none'}"
        )
    return {model_id: specs[model_id] for model_id in served}


def _progress_publisher(nc: NatsClient) -> Publish:
    """Live progress goes out on core NATS (not stored: the read model derives it from the results)."""

    async def publish(progress: pb.RunProgress) -> None:
        await nc.publish(progress_subject(progress.run_id), progress.SerializeToString())

    return publish
