"""Wires the annotations service together: the one place that builds its dependencies.

`python -m annotations_service` and the integration tests both start the service through start().
"""

from annotations_service.adapters.curation import CurationProjection, CurationReadModel
from annotations_service.adapters.dataset_answers import DatasetAnswers
from annotations_service.adapters.datasets_client import DatasetsClient
from annotations_service.adapters.label_studio import LabelStudioClient
from annotations_service.adapters.read_model import AnnotationsProjection, AnnotationsReadModel
from annotations_service.application import AnnotationsApplication
from annotations_service.curation_queries import CurationQueries, RecordOrder
from annotations_service.grpc.servicer import AnnotationServicer
from annotations_service.label_studio_sync import LabelStudioSync
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
        label_studio = LabelStudioSync(
            host.store,
            runner,
            app.read_model,
            DatasetAnswers(host.database),
            CurationReadModel(host.database),
            datasets,
            _label_studio(settings),
            clock=host.clock,
        )
        await host.start(AnnotationServicer(app, queries, label_studio))
    return Running(host, app)


def _label_studio(settings: AnnotationsSettings) -> LabelStudioClient | None:
    """The Label Studio server the settings name; None when they name none."""
    if not settings.label_studio_url:
        return None
    return LabelStudioClient(settings.label_studio_url, settings.label_studio_token, settings.rpc_timeout_s)
