"""WS /ws/workbench[?since=N]: pushes progress, results, run, annotation and worker events to the browser
as JSON text frames.

The first frame is a hello. With `since` (the last stored-event sequence the page applied) the frames
it missed follow, read from the stream, then the live ones: none missing, none twice. A page that
cannot resume that way is closed with CLOSE_RELOAD instead, so it refetches once. A page that reads
too slowly is closed with CLOSE_FELL_BEHIND (see live.py) and resumes with `since`.
"""

import asyncio
import contextlib
import logging
from typing import Any

from litestar import WebSocket, websocket
from litestar.exceptions import WebSocketDisconnect

from gateway.access import NotLoaded
from gateway.auth import authenticate, same_origin
from gateway.live import CLOSE_RELOAD, CLOSE_UNAUTHORIZED, ClientQueue, LiveHub
from gateway.relay import CannotResume, NatsRelay, hello_frame
from gateway.settings import GatewaySettings

log = logging.getLogger(__name__)

# "Try again later" (RFC 6455 registry): the access list is still loading.
CLOSE_TRY_AGAIN = 1013
# A page resuming from a gateway that has just started waits this long for its relay to follow the stream.
WAIT_FOR_RELAY_S = 5.0


async def _wait_for_disconnect(socket: WebSocket[Any, Any, Any], client: ClientQueue) -> None:
    try:
        async for _ in socket.iter_data("text"):
            pass  # the browser has nothing to say; reading notices when it goes away
    finally:
        client.close()


async def _greet(socket: WebSocket[Any, Any, Any], client: ClientQueue, relay: NatsRelay, since: int | None) -> bool:
    """Sends the hello and, to a page resuming after `since`, the frames it missed.

    False when the socket was closed instead: the page must refetch (CLOSE_RELOAD).
    """
    if since is None:
        await socket.send_text(hello_frame(resumed=False, sequence=client.start).text)
        return True
    try:
        replay = await relay.replay(since, until=client.start)
    except CannotResume as why:
        log.info("a page cannot resume after sequence %d: %s", since, why)
        await socket.close(code=CLOSE_RELOAD, reason=f"cannot resume: {why}"[:120])
        return False
    try:
        await socket.send_text(hello_frame(resumed=True, sequence=client.start).text)
        async for frame in replay.frames():
            await socket.send_text(frame.text)
            client.mark_sent(frame.seq)  # the live frames it overlaps are skipped
    except CannotResume as why:
        await socket.close(code=CLOSE_RELOAD, reason=f"replay interrupted: {why}"[:120])
        return False
    finally:
        await replay.close()
    return True


@websocket("/ws/workbench")
async def workbench_socket(
    socket: WebSocket[Any, Any, Any],
    settings: GatewaySettings,
    hub: LiveHub,
    relay: NatsRelay,
    since: int | None = None,
) -> None:
    await socket.accept()
    # Checked after accept: a browser sees the close code (4401), never the HTTP status of a refused handshake.
    # The page's session cookie (or a bearer header, from other clients) says who it is; any role may watch.
    try:
        principal = authenticate(socket) if same_origin(socket) else None
    except NotLoaded:
        await socket.close(code=CLOSE_TRY_AGAIN, reason="the gateway is starting: try again")
        return
    if principal is None:
        await socket.close(code=CLOSE_UNAUTHORIZED, reason="not logged in (or from another site)")
        return
    if since is not None:
        await hub.following(WAIT_FOR_RELAY_S)
    # Live frames queue up (bounded) from here on, while the missed ones are replayed.
    client = hub.subscribe(since)
    reader = asyncio.create_task(_wait_for_disconnect(socket, client))
    try:
        if not await _greet(socket, client, relay, since):
            return
        while (text := await client.get()) is not None:
            await socket.send_text(text)
        if (closing := client.closing) is not None:
            await socket.close(code=closing.code, reason=closing.reason)
    except (WebSocketDisconnect, OSError):
        pass  # the browser went away mid-send
    finally:
        hub.unsubscribe(client)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
