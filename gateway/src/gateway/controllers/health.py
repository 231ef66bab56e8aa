"""Liveness of the gateway and of the services behind it (no token needed: probes call it)."""

from typing import Any

from litestar import Response, get

from gateway.clients import Clients
from gateway.relay import NatsRelay


@get("/health", operation_id="health", tags=["health"])
async def health(clients: Clients, relay: NatsRelay) -> Response[dict[str, Any]]:
    """200 {"status": "ok"} when every service answers SERVING; 503 naming the ones that do not.

    Each service also reports its read models' lag behind the event log and the events they parked
    (could not apply; `python -m <service> parked` lists them), and under "storage" any stream whose
    replicas differ from its WB_STREAM_REPLICAS: informative, they do not fail the check.
    """
    services = await clients.health()
    down = [name for name, state in services.items() if not state.serving]
    body: dict[str, Any] = {
        "status": "unavailable" if down else "ok",
        "services": {name: "ok" if state.serving else "down" for name, state in services.items()},
        "read_models": {
            name: {"parked_events": state.parked_events, "projector_lag": state.projector_lag}
            for name, state in services.items()
            if state.read_models
        },
        "live_updates": "ok" if relay.connected else "down",  # informative: HTTP works without NATS
    }
    storage = {name: list(state.storage_warnings) for name, state in services.items() if state.storage_warnings}
    if storage:
        body["storage"] = storage
    if down:
        body["detail"] = f"not serving: {', '.join(down)}"
    return Response(body, status_code=503 if down else 200)
