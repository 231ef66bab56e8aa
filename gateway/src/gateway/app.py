"""The Litestar application: routes, auth, error mapping, the frontend, and what lives for the process."""

import asyncio
import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, Request, Router
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import ImproperlyConfiguredException
from litestar.handlers import BaseRouteHandler
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController
from litestar.routes import HTTPRoute
from litestar.static_files import create_static_files_router

from eventlog import EventStore, JetStreamEventStore
from eventlog.tasks import cancel_and_wait
from gateway.access import AccessBook, Principal
from gateway.auth import ROLE_OPT, RateLimiter, SessionSigner, authorize
from gateway.clients import Clients
from gateway.controllers.access import MeController, SessionController, UserController
from gateway.controllers.annotations import AnnotationController, ExportController
from gateway.controllers.datasets import DatasetController
from gateway.controllers.health import health
from gateway.controllers.inference import ModelController, RunController
from gateway.controllers.label_studio import LabelStudioController
from gateway.controllers.live import workbench_socket
from gateway.controllers.workbench import WorkbenchController
from gateway.curation import fetch_stats
from gateway.errors import EXCEPTION_HANDLERS
from gateway.headers import security_headers
from gateway.limits import TextRules
from gateway.live import LiveHub
from gateway.relay import NatsRelay
from gateway.settings import LOGIN_BURST, GatewaySettings
from gateway.stats_feed import StatsFeed

# The API under /admin: every route declares its role. Anyone may call the rest (the page's files,
# health, metrics, the schema, logging in and out).
API_CONTROLLERS = (
    DatasetController,
    ModelController,
    RunController,
    WorkbenchController,
    AnnotationController,
    ExportController,
    LabelStudioController,
    MeController,
    UserController,
)


def _settings(state: State) -> GatewaySettings:
    return state.settings  # type: ignore[no-any-return]


def _clients(state: State) -> Clients:
    return state.clients  # type: ignore[no-any-return]


def _hub(state: State) -> LiveHub:
    return state.hub  # type: ignore[no-any-return]


def _relay(state: State) -> NatsRelay:
    return state.relay  # type: ignore[no-any-return]


def _access(state: State) -> AccessBook:
    return state.access  # type: ignore[no-any-return]


def _principal(request: Request[Any, Any, Any]) -> Principal:
    """The caller `authorize` let in (for the handlers that record who acted)."""
    return request.state.principal  # type: ignore[no-any-return]


def check_roles_declared(app: Litestar) -> None:
    """Every guarded route names the least role it needs: a route without one is a mistake, found at start."""
    for route in app.routes:
        handlers = route.route_handlers if isinstance(route, HTTPRoute) else [route.route_handler]
        for handler in handlers:
            guarded = isinstance(handler, BaseRouteHandler) and authorize in handler.resolve_guards()
            if guarded and ROLE_OPT not in handler.opt:
                raise ImproperlyConfiguredException(f"{route.path} declares no role (opt={{'role': Role.X}})")


def create_app(settings: GatewaySettings, access_store: EventStore | None = None) -> Litestar:
    """The gateway for these settings; gRPC channels, the NATS relay and the access list open when it starts.

    access_store: where the access list lives (tests pass an in-memory one); default the event log on NATS.
    """

    async def open_access_store() -> EventStore:
        if access_store is not None:
            return access_store
        return await JetStreamEventStore.connect(
            settings.nats_url,
            settings.event_stream,
            name="wb-gateway-access",
            user=settings.nats_user,
            password=settings.nats_password,
        )

    access = AccessBook(open_access_store, settings.api_token, settings.admin_name)

    @asynccontextmanager
    async def connections(app: Litestar) -> AsyncIterator[None]:
        access.start()
        hub = LiveHub(backlog_bytes=settings.live_backlog_bytes)
        clients = Clients.open(settings)

        feed = StatsFeed(hub, functools.partial(fetch_stats, clients))
        relay = NatsRelay(
            settings.nats_url,
            settings.event_stream,
            hub,
            changed=feed.changed,
            user=settings.nats_user,
            password=settings.nats_password,
        )
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
            await access.close()

    rules = TextRules(settings.max_id_chars, settings.max_text_chars)
    admin = Router(
        path="/admin",
        guards=[authorize],
        security=[{"bearer": []}, {"session": []}],
        before_request=rules.check_request,
        route_handlers=list(API_CONTROLLERS),
    )
    login = Router(path="/", before_request=rules.check_request, route_handlers=[SessionController])
    frontend = create_static_files_router(path="/", directories=[settings.frontend_dir], html_mode=True)

    # Request counts and latency by route template (not by URL: ids would make a series per record).
    prometheus = PrometheusConfig(app_name="wb-gateway", prefix="wb_gateway", group_path=True, exclude=["/metrics"])
    secret = settings.session_secret or settings.api_token
    app = Litestar(
        route_handlers=[admin, login, health, workbench_socket, PrometheusController, frontend],
        middleware=[security_headers, prometheus.middleware],
        lifespan=[connections],
        request_max_body_size=settings.max_json_bytes,
        state=State(
            {
                "settings": settings,
                "access": access,
                "sessions": SessionSigner.from_secret(secret, int(settings.session_hours * 3600)),
                "rate_limiter": RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst),
                "login_limiter": RateLimiter(settings.login_rate_per_s, LOGIN_BURST),
            }
        ),
        dependencies={
            "settings": Provide(_settings, sync_to_thread=False),
            "clients": Provide(_clients, sync_to_thread=False),
            "hub": Provide(_hub, sync_to_thread=False),
            "relay": Provide(_relay, sync_to_thread=False),
            "principal": Provide(_principal, sync_to_thread=False),
            "access": Provide(_access, sync_to_thread=False),
        },
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=OpenAPIConfig(
            title="LLM Batch Workbench",
            version="1.0.0",
            path="/schema",
            # The JSON alone: the interactive viewers load scripts from a CDN, which the page's CSP forbids.
            render_plugins=[JsonRenderPlugin()],
            components=Components(
                security_schemes={
                    "bearer": SecurityScheme(type="http", scheme="bearer"),
                    "session": SecurityScheme(type="apiKey", security_scheme_in="cookie", name="wb_session"),
                }
            ),
        ),
    )
    check_roles_declared(app)
    return app
