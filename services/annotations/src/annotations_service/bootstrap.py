"""Wires the annotations service together: the one place that builds its dependencies.

`python -m annotations_service` and the integration tests both start the service through start().
"""

from annotations_service.adapters.curation import CurationProjection, CurationReadModel
from annotations_service.adapters.datasets_client import DatasetsClient
from annotations_service.adapters.read_model import AnnotationsProjection, AnnotationsReadModel
from annotations_service.application import AnnotationsApplication
from annotations_service.curation_queries import CurationQueries, RecordOrder
from annotations_service.grpc.servicer import AnnotationServicer
from annotations_service.settings import AnnotationsSettings
from eventlog import EventStore, Projection
from servicehost.host import Running, ServiceHost


def projections() -> list[Projection]:
    """The read model's projections (what `rebuild` replays)."""
    return [AnnotationsProjection(), CurationProjection()]


async def start(settings: AnnotationsSettings, store: EventStore | None = None) -> Running[AnnotationsApplication]:
    """Connects to NATS, brings the read model up to date, and serves on settings.address."""
    async with ServiceHost.starting("annotations", settings, store=store) as host:
        projection, curation = projections()
        runner = host.project(projection)
        host.project(curation)
        await host.catch_up()
        datasets = DatasetsClient(settings.datasets_addr, settings.rpc_timeout_s)
        host.close_on_stop(datasets.close)
        app = AnnotationsApplication(
            host.store, runner, AnnotationsReadModel(host.database), datasets, clock=host.clock
        )
        queries = CurationQueries(CurationReadModel(host.database), RecordOrder(datasets))
        await host.start(AnnotationServicer(app, queries))
    return Running(host, app)
