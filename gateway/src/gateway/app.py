"""The Litestar application: routes, auth, error mapping, the frontend, and what lives for the process."""

import asyncio
import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController
from litestar.static_files import create_static_files_router

from eventlog.tasks import cancel_and_wait
from gateway.auth import require_token
from gateway.clients import Clients
from gateway.controllers.annotations import AnnotationController, ExportController
from gateway.controllers.datasets import DatasetController
from gateway.controllers.health import health
from gateway.controllers.inference import ModelController, RunController
from gateway.controllers.label_studio import LabelStudioController
from gateway.controllers.live import workbench_socket
from gateway.controllers.workbench import WorkbenchController
from gateway.curation import fetch_stats
from gateway.errors import EXCEPTION_HANDLERS
from gateway.live import LiveHub
from gateway.relay import NatsRelay
from gateway.settings import GatewaySettings
from gateway.stats_feed import StatsFeed


def _settings(state: State) -> GatewaySettings:
    return state.settings  # type: ignore[no-any-return]


def _clients(state: State) -> Clients:
    return state.clients  # type: ignore[no-any-return]


def _hub(state: State) -> LiveHub:
    return state.hub  # type: ignore[no-any-return]


def _relay(state: State) -> NatsRelay:
    return state.relay  # type: ignore[no-any-return]


def create_app(settings: GatewaySettings) -> Litestar:
    """The gateway for these settings; gRPC channels and the NATS relay open when the app starts."""

    @asynccontextmanager
    async def connections(app: Litestar) -> AsyncIterator[None]:
        hub = LiveHub(backlog_bytes=settings.live_backlog_bytes)
        clients = Clients.open(settings)

        feed = StatsFeed(hub, functools.partial(fetch_stats, clients))
        relay = NatsRelay(settings.nats_url, settings.event_stream, hub, changed=feed.changed)
        app.state.clients = clients
        app.state.hub = hub
        app.state.relay = relay
        relay_task = asyncio.create_task(relay.run(), name="nats-relay")
        try:
            yield
        finally:
            await cancel_and_wait(relay_task)
            await feed.close()
            await app.state.clients.close()

    admin = Router(
        path="/admin",
        guards=[require_token],
        security=[{"bearer": []}],
        route_handlers=[
            DatasetController,
            ModelController,
            RunController,
            WorkbenchController,
            AnnotationController,
            ExportController,
            LabelStudioController,
        ],
    )
    frontend = create_static_files_router(path="/", directories=[settings.frontend_dir], html_mode=True)

    # Request counts and latency by route template (not by URL: ids would make a series per record).
    prometheus = PrometheusConfig(app_name="wb-gateway", prefix="wb_gateway", group_path=True, exclude=["/metrics"])
    return Litestar(
        route_handlers=[admin, health, workbench_socket, PrometheusController, frontend],
        middleware=[prometheus.middleware],
        lifespan=[connections],
        state=State({"settings": settings}),
        dependencies={
            "settings": Provide(_settings, sync_to_thread=False),
            "clients": Provide(_clients, sync_to_thread=False),
            "hub": Provide(_hub, sync_to_thread=False),
            "relay": Provide(_relay, sync_to_thread=False),
        },
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=OpenAPIConfig(
            title="LLM Batch Workbench",
            version="1.0.0",
            path="/schema",
            components=Components(security_schemes={"bearer": SecurityScheme(type="http", scheme="bearer")}),
        ),
    )
