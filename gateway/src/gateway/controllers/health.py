"""Liveness of the gateway and of the services behind it (no token needed: probes call it)."""

from typing import Any

from litestar import Response, get

from gateway.clients import Clients
from gateway.relay import NatsRelay


@get("/health", operation_id="health", tags=["health"])
async def health(clients: Clients, relay: NatsRelay) -> Response[dict[str, Any]]:
    """200 {"status": "ok"} when every service answers SERVING; 503 naming the ones that do not."""
    services = await clients.health()
    down = [name for name, state in services.items() if state != "ok"]
    body: dict[str, Any] = {
        "status": "unavailable" if down else "ok",
        "services": services,
        "live_updates": "ok" if relay.connected else "down",  # informative: HTTP works without NATS
    }
    if down:
        body["detail"] = f"not serving: {', '.join(down)}"
    return Response(body, status_code=503 if down else 200)
