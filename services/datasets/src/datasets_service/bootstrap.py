"""Wires the datasets service together: the one place that builds its dependencies.

`python -m datasets_service` and the integration tests both start the service through start().
"""

import asyncio

from datasets_service.adapters.object_store import DatasetFiles
from datasets_service.adapters.page_cache import PageCache
from datasets_service.adapters.read_model import DatasetsProjection, DatasetsReadModel
from datasets_service.adapters.spool import ensure_spool_dir
from datasets_service.application import DatasetsApplication
from datasets_service.domain.upload import Limits
from datasets_service.grpc.servicer import DatasetServicer
from datasets_service.settings import DatasetsSettings
from eventlog import EventStore, Projection
from servicehost.host import Running, ServiceHost


def projections() -> list[Projection]:
    """The read model's projections (what `rebuild` replays)."""
    return [DatasetsProjection()]


async def start(settings: DatasetsSettings, store: EventStore | None = None) -> Running[DatasetsApplication]:
    """Connects to NATS, brings the read model up to date, and serves on settings.address."""
    async with ServiceHost.starting("datasets", settings, store=store) as host:
        (projection,) = projections()
        runner = host.project(projection)
        await host.catch_up()
        files = await DatasetFiles.open(host.nats.jetstream(), replicas=settings.stream_replicas)
        await host.check_replicas(files.stream)
        await asyncio.to_thread(ensure_spool_dir, settings.spool_dir)
        app = DatasetsApplication(
            host.store,
            runner,
            DatasetsReadModel(host.database),
            files,
            PageCache(settings.cache_bytes),
            settings.max_upload_bytes,
            limits=Limits(max_records=settings.max_records, max_line_bytes=settings.max_line_bytes),
            page_records=settings.page_records,
            spool_dir=settings.spool_dir,
            clock=host.clock,
        )
        await host.start(DatasetServicer(app))
    return Running(host, app)
