"""Channels to other services: every call carries a deadline, and a failed call becomes an error kind.

A call without a deadline waits for ever on a peer that hangs; the channel gives every call that
names none the default (WB_RPC_TIMEOUT_S). Long streams pass their own timeout.
"""

from collections.abc import Callable
from typing import Any, cast

import grpc
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.message import Message
from grpc_status import rpc_status

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
# A peer that restarts is found again within 2 s: gRPC's default backoff grows to 120 s, and every
# call meanwhile fails at once (UNAVAILABLE) though the peer is long back.
RECONNECT_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.min_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 2000),
)

_KIND_OF: dict[grpc.StatusCode, type[ServiceError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidInput,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ABORTED: Conflict,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.DATA_LOSS: DataLoss,
}
_UNREACHABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED)


class _WithDeadline:
    """A stub method that names the default deadline when its caller names none."""

    def __init__(self, call: Callable[..., Any], timeout_s: float) -> None:
        self._call = call
        self._timeout_s = timeout_s

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self._timeout_s
        return self._call(*args, **kwargs)


class _DeadlineChannel:
    """A channel whose stubs' calls all carry a deadline.

    Not a client interceptor: grpc.aio turns an intercepted client-streaming call's request
    iterator into write() calls, and then a service that refuses an upload early is reported as
    INTERNAL instead of with its own status and words.
    """

    def __init__(self, channel: grpc.aio.Channel, timeout_s: float) -> None:
        self._channel = channel
        self._timeout_s = timeout_s

    def unary_unary(self, *args: Any, **kwargs: Any) -> _WithDeadline:
        return _WithDeadline(self._channel.unary_unary(*args, **kwargs), self._timeout_s)

    def unary_stream(self, *args: Any, **kwargs: Any) -> _WithDeadline:
        return _WithDeadline(self._channel.unary_stream(*args, **kwargs), self._timeout_s)

    def stream_unary(self, *args: Any, **kwargs: Any) -> _WithDeadline:
        return _WithDeadline(self._channel.stream_unary(*args, **kwargs), self._timeout_s)

    def stream_stream(self, *args: Any, **kwargs: Any) -> _WithDeadline:
        return _WithDeadline(self._channel.stream_stream(*args, **kwargs), self._timeout_s)

    def __getattr__(self, name: str) -> Any:  # close(), get_state(), channel_ready(), ...
        return getattr(self._channel, name)

    async def __aenter__(self) -> "_DeadlineChannel":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._channel.close()


def open_channel(address: str, timeout_s: float = DEFAULT_RPC_TIMEOUT_S) -> grpc.aio.Channel:
    """A channel to a peer service: the workbench's message size limits, a deadline on every call."""
    channel = grpc.aio.insecure_channel(address, options=(*MESSAGE_OPTIONS, *RECONNECT_OPTIONS))
    return cast(grpc.aio.Channel, _DeadlineChannel(channel, timeout_s))


def peer_error(error: grpc.aio.AioRpcError, peer: str, address: str) -> ServiceError:
    """The error kind for a failed call to a peer: its own words for the caller's mistakes, ours when
    it is away (so the user learns which service and which setting), ServiceError (INTERNAL) else."""
    code = error.code()
    kind = _KIND_OF.get(code)
    if kind is not None:
        return kind(error.details() or f"the {peer} service answered {code.name}", status_details(error))
    if code in _UNREACHABLE:
        return Unavailable(
            f"the {peer} service at {address} did not answer ({code.name}); check that it is running "
            f"and that WB_{peer.upper()}_ADDR points at it, then try again"
        )
    return ServiceError(f"the {peer} service failed ({code.name}): {error.details()}")


def status_details(error: grpc.aio.AioRpcError) -> list[Message]:
    """The contract messages a failed call carries in its status details (google.rpc.Status),
    unpacked into their own types (the generated modules must have been imported)."""
    status = rpc_status.from_call(error)
    if status is None:
        return []
    found: list[Message] = []
    for packed in status.details:
        name = packed.TypeName()
        try:
            cls = message_factory.GetMessageClass(descriptor_pool.Default().FindMessageTypeByName(name))
        except KeyError:
            continue
        detail = cls()
        packed.Unpack(detail)
        found.append(detail)
    return found
