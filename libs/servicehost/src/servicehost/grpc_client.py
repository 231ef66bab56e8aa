"""Channels to other services: every call carries a deadline, and a failed call becomes an error kind.

A call without a deadline waits for ever on a peer that hangs; the channel's interceptor gives
every call that names none the default (WB_RPC_TIMEOUT_S). Long streams pass their own timeout.
"""

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from servicehost.errors import (
    Conflict,
    DataLoss,
    FailedPrecondition,
    InvalidInput,
    NotFound,
    ServiceError,
    Unavailable,
)
from servicehost.grpc_server import MESSAGE_OPTIONS

DEFAULT_RPC_TIMEOUT_S = 30.0

_KIND_OF: dict[grpc.StatusCode, type[ServiceError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidInput,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ABORTED: Conflict,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.DATA_LOSS: DataLoss,
}
_UNREACHABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED)


class _Deadline(
    grpc.aio.UnaryUnaryClientInterceptor,  # type: ignore[misc]
    grpc.aio.UnaryStreamClientInterceptor,  # type: ignore[misc]
    grpc.aio.StreamUnaryClientInterceptor,  # type: ignore[misc]
    grpc.aio.StreamStreamClientInterceptor,  # type: ignore[misc]
):
    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        if details.timeout is not None:
            return details
        return grpc.aio.ClientCallDetails(
            details.method, self.timeout_s, details.metadata, details.credentials, details.wait_for_ready
        )

    async def intercept_unary_unary(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)

    async def intercept_unary_stream(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)

    async def intercept_stream_unary(self, continuation: Callable[..., Any], details: Any, requests: Any) -> Any:
        return await continuation(self._details(details), requests)

    async def intercept_stream_stream(self, continuation: Callable[..., Any], details: Any, requests: Any) -> Any:
        return await continuation(self._details(details), requests)


def open_channel(address: str, timeout_s: float = DEFAULT_RPC_TIMEOUT_S) -> grpc.aio.Channel:
    """A channel to a peer service: the workbench's message size limits, a deadline on every call."""
    return grpc.aio.insecure_channel(address, options=MESSAGE_OPTIONS, interceptors=[_Deadline(timeout_s)])


def peer_error(error: grpc.aio.AioRpcError, peer: str, address: str) -> ServiceError:
    """The error kind for a failed call to a peer: its own words for the caller's mistakes, ours when
    it is away (so the user learns which service and which setting), ServiceError (INTERNAL) else."""
    code = error.code()
    kind = _KIND_OF.get(code)
    if kind is not None:
        return kind(error.details() or f"the {peer} service answered {code.name}")
    if code in _UNREACHABLE:
        return Unavailable(
            f"the {peer} service at {address} did not answer ({code.name}); check that it is running "
            f"and that WB_{peer.upper()}_ADDR points at it, then try again"
        )
    return ServiceError(f"the {peer} service failed ({code.name}): {error.details()}")


async def stream_from_peer(calls: AsyncIterator[Any], peer: str, address: str) -> AsyncIterator[Any]:
    """Yields a server stream's messages, turning a failed call into peer_error()."""
    try:
        async for message in calls:
            yield message
    except grpc.aio.AioRpcError as error:
        raise peer_error(error, peer, address) from None
