"""The gRPC server every service runs: health checks, reflection, one error mapping, call metrics.

Handlers raise the error kinds of servicehost.errors (or the event log's and NATS' own errors);
the one interceptor turns each into its status code, the same way in every service. Anything else
becomes INTERNAL without its details reaching the caller (they go to the service log).
"""

import logging
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import nats.errors
import nats.js.errors
from google.protobuf import any_pb2
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import Message
from google.rpc import status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from grpc_status import rpc_status
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError

from eventlog import AppendTimeout, ConcurrencyConflict
from servicehost import metrics
from servicehost.errors import Conflict, DataLoss, FailedPrecondition, InvalidInput, NotFound, Unavailable

log = logging.getLogger(__name__)

# Message size limits for every server and client of the workbench (records and result lists
# can be large); gRPC's default receive limit is 4 MiB.
MESSAGE_OPTIONS = (
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
)

# Errors whose message is meant for the caller.
STATUS_OF: dict[type[BaseException], grpc.StatusCode] = {
    InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    Conflict: grpc.StatusCode.ABORTED,
    ConcurrencyConflict: grpc.StatusCode.ABORTED,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
    DataLoss: grpc.StatusCode.DATA_LOSS,
    AppendTimeout: grpc.StatusCode.UNAVAILABLE,
}
# Infrastructure that is down or slow: UNAVAILABLE (retry later) with a message of our own, as
# theirs may name hosts, SQL or internals.
UNAVAILABLE_BECAUSE: dict[type[BaseException], str] = {
    nats.errors.NoServersError: "the event log (NATS) cannot be reached; try again shortly",
    nats.errors.ConnectionClosedError: "the connection to the event log (NATS) is closed; try again shortly",
    nats.errors.ConnectionReconnectingError: "the event log (NATS) is reconnecting; try again shortly",
    nats.errors.NoRespondersError: "the event log (NATS) has no JetStream to answer; try again shortly",
    # In a cluster, while the servers elect a new leader for a stream whose leader went away.
    nats.js.errors.NoStreamResponseError: "the event log (NATS) has no stream leader now; try again shortly",
    TimeoutError: "a dependency did not answer in time; try again shortly",
    OperationalError: "the read-model database is not answering; try again shortly",
    InterfaceError: "the read-model database is not answering; try again shortly",
    DisconnectionError: "the read-model database is not answering; try again shortly",
}


def status_for(error: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and message a caller gets for an error raised by a handler."""
    for cls in type(error).__mro__:
        if cls in STATUS_OF:
            return STATUS_OF[cls], str(error)
        if cls in UNAVAILABLE_BECAUSE:
            log.warning("answering UNAVAILABLE: %r", error)
            return grpc.StatusCode.UNAVAILABLE, UNAVAILABLE_BECAUSE[cls]
    log.error("unhandled error in a gRPC handler", exc_info=error)
    return grpc.StatusCode.INTERNAL, "internal error; see the service log"


def rich_status(code: grpc.StatusCode, message: str, details: Sequence[Message]) -> grpc.Status:
    """A status with details (google.rpc.Status): clients read them with grpc_status.rpc_status."""
    packed = []
    for detail in details:
        wrapper = any_pb2.Any()
        wrapper.Pack(detail)
        packed.append(wrapper)
    return rpc_status.to_status(status_pb2.Status(code=code.value[0], message=message, details=packed))


@dataclass(frozen=True, slots=True)
class GrpcService:
    """A servicer and how to add it to a server (what the generated add_*_to_server does)."""

    descriptor: ServiceDescriptor
    servicer: object
    add_to_server: Callable[[Any, grpc.aio.Server], None]

    @property
    def name(self) -> str:
        return self.descriptor.full_name

    @classmethod
    def of(cls, servicer: object) -> "GrpcService":
        """The service a servicer implements, found from the generated base class it subclasses
        (<Name>Servicer in a *_pb2_grpc module, beside add_<Name>Servicer_to_server and *_pb2)."""
        for base in type(servicer).__mro__:
            module = sys.modules.get(base.__module__)
            adder = getattr(module, f"add_{base.__name__}_to_server", None)
            if module is not None and base.__module__.endswith("_pb2_grpc") and adder is not None:
                messages = sys.modules[base.__module__.removesuffix("_grpc")]
                descriptor = messages.DESCRIPTOR.services_by_name[base.__name__.removesuffix("Servicer")]
                return cls(descriptor, servicer, adder)
        raise TypeError(f"{type(servicer).__name__} does not subclass a generated gRPC servicer")


# The generated handler kinds, and what rebuilds a handler of each kind around a new behaviour.
_HANDLER_FACTORIES = {
    "unary_unary": grpc.unary_unary_rpc_method_handler,
    "stream_unary": grpc.stream_unary_rpc_method_handler,
    "unary_stream": grpc.unary_stream_rpc_method_handler,
    "stream_stream": grpc.stream_stream_rpc_method_handler,
}


class EdgeInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Maps exceptions to status codes (status_for) and counts every call by method and code."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Any],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        service, _, method = handler_call_details.method.strip("/").rpartition("/")
        kind = next(kind for kind in _HANDLER_FACTORIES if getattr(handler, kind))
        inner = getattr(handler, kind)

        def done(context: grpc.aio.ServicerContext, started: float, code: str | None = None) -> None:
            metrics.observe_grpc_call(service, method, code or _code_name(context), time.perf_counter() - started)

        async def fail(context: grpc.aio.ServicerContext, started: float, error: Exception) -> None:
            code, message = status_for(error)
            done(context, started, code.name)
            details = getattr(error, "details", ()) if code != grpc.StatusCode.INTERNAL else ()
            if details:
                await context.abort_with_status(rich_status(code, message, details))  # raises AbortError
            await context.abort(code, message)  # raises AbortError

        async def unary_response(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            try:
                response = await inner(request, context)
            except grpc.aio.AbortError:
                done(context, started)
                raise
            except Exception as error:
                await fail(context, started, error)
                raise
            done(context, started, "OK")
            return response

        async def stream_response(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            started = time.perf_counter()
            try:
                async for item in inner(request, context):
                    yield item
            except grpc.aio.AbortError:
                done(context, started)
                raise
            except Exception as error:
                await fail(context, started, error)
                raise
            done(context, started, "OK")

        return _HANDLER_FACTORIES[kind](
            unary_response if kind.endswith("_unary") else stream_response,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def _code_name(context: grpc.aio.ServicerContext) -> str:
    code = context.code()
    return code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"


@dataclass
class GrpcServer:
    server: grpc.aio.Server
    health: health.aio.HealthServicer
    names: Sequence[str]

    async def stop(self, grace: float) -> None:
        """Says NOT_SERVING (so load balancers stop sending), then lets running calls finish."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)


async def start_grpc_server(address: str, services: Sequence[GrpcService]) -> GrpcServer:
    """Starts a grpc.aio server on address with the services, health and reflection."""
    server = grpc.aio.server(interceptors=[EdgeInterceptor()], options=MESSAGE_OPTIONS)
    for service in services:
        service.add_to_server(service.servicer, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [service.name for service in services]
    reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    if server.add_insecure_port(address) == 0:
        raise OSError(f"cannot listen on {address}: the port is in use or the address is wrong")
    await server.start()
    for name in [*names, ""]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return GrpcServer(server, health_servicer, names)
