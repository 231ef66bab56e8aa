"""WS /ws/workbench: pushes progress, results and run events to the browser as JSON text frames."""

import asyncio
import contextlib
from typing import Any

from litestar import WebSocket, websocket
from litestar.exceptions import WebSocketDisconnect

from gateway.auth import token_is_valid
from gateway.live import CLOSE_RELOAD, CLOSE_UNAUTHORIZED, ClientQueue, LiveHub
from gateway.settings import GatewaySettings


async def _wait_for_disconnect(socket: WebSocket[Any, Any, Any], client: ClientQueue) -> None:
    try:
        async for _ in socket.iter_data("text"):
            pass  # the browser has nothing to say; reading notices when it goes away
    finally:
        client.close()


@websocket("/ws/workbench")
async def workbench_socket(socket: WebSocket[Any, Any, Any], settings: GatewaySettings, hub: LiveHub) -> None:
    await socket.accept()
    # Checked after accept: a browser sees the close code (4401), never the HTTP status of a refused handshake.
    if not token_is_valid(socket, settings.api_token, allow_query=True):
        await socket.close(code=CLOSE_UNAUTHORIZED, reason="missing or wrong token")
        return
    client = hub.subscribe()
    reader = asyncio.create_task(_wait_for_disconnect(socket, client))
    try:
        while (text := await client.get()) is not None:
            await socket.send_text(text)
        if client.must_reload:
            reason = "too far behind" if client.overflowed else "live updates were interrupted"
            await socket.close(code=CLOSE_RELOAD, reason=f"{reason}: reload the results")
    except (WebSocketDisconnect, OSError):
        pass  # the browser went away mid-send
    finally:
        hub.unsubscribe(client)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
