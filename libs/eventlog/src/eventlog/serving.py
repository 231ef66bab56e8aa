"""The gRPC server every service runs: health checks, reflection, and one error mapping.

Services pass the table that maps their own error classes to status codes; any other exception
becomes INTERNAL without its details reaching the caller.
"""

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

log = logging.getLogger(__name__)

ErrorMap = Mapping[type[BaseException], grpc.StatusCode]

# Message size limits for every server and client of the workbench (records and result lists
# can be large); gRPC's default receive limit is 4 MiB.
MESSAGE_OPTIONS = (
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
)


def insecure_channel(address: str) -> grpc.aio.Channel:
    """A channel to a peer service, with the workbench's message size limits."""
    return grpc.aio.insecure_channel(address, options=MESSAGE_OPTIONS)


class ErrorInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Maps exceptions raised by handlers to gRPC status codes, in one place."""

    def __init__(self, error_map: ErrorMap) -> None:
        self.error_map = error_map

    def _code_for(self, error: BaseException) -> grpc.StatusCode | None:
        for cls in type(error).__mro__:
            if cls in self.error_map:
                return self.error_map[cls]
        return None

    async def _abort(self, context: grpc.aio.ServicerContext, error: Exception) -> None:
        code = self._code_for(error)
        if code is None:
            log.exception("unhandled error in a gRPC handler")
            await context.abort(grpc.StatusCode.INTERNAL, "internal error; see the service log")
        await context.abort(code, str(error))

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Any],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        abort = self._abort

        if handler.unary_unary or handler.stream_unary:
            inner = handler.unary_unary or handler.stream_unary

            async def unary_response(request: Any, context: grpc.aio.ServicerContext) -> Any:
                try:
                    return await inner(request, context)
                except grpc.aio.AbortError:
                    raise
                except Exception as error:
                    await abort(context, error)

            factory = (
                grpc.unary_unary_rpc_method_handler if handler.unary_unary else grpc.stream_unary_rpc_method_handler
            )
            return factory(
                unary_response,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )

        inner_stream = handler.unary_stream or handler.stream_stream

        async def stream_response(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            try:
                async for item in inner_stream(request, context):
                    yield item
            except grpc.aio.AbortError:
                raise
            except Exception as error:
                await abort(context, error)

        factory = (
            grpc.unary_stream_rpc_method_handler if handler.unary_stream else grpc.stream_stream_rpc_method_handler
        )
        return factory(
            stream_response,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


async def start_server(
    address: str,
    register: Callable[[grpc.aio.Server], None],
    service_names: Sequence[str],
    error_map: ErrorMap,
) -> tuple[grpc.aio.Server, health.aio.HealthServicer]:
    """Starts a grpc.aio server on address with health and reflection; returns it and its health."""
    server = grpc.aio.server(
        interceptors=[ErrorInterceptor(error_map)],
        options=MESSAGE_OPTIONS,
    )
    register(server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection([*service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    if server.add_insecure_port(address) == 0:
        raise OSError(f"cannot listen on {address}: the port is in use or the address is wrong")
    await server.start()
    for name in [*service_names, ""]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, health_servicer


async def signalled() -> None:
    """Returns once the process receives SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()


async def run_until_stopped(projector: "asyncio.Task[None]", stop: Callable[[], Awaitable[None]]) -> int:
    """Serves until SIGTERM/SIGINT, then stops; returns the process's exit code.

    A projector that died would leave every read stale for good, so its end also stops the
    service, with exit code 1, for the supervisor (Kubernetes, `make run`) to restart it.
    """
    stopping = asyncio.create_task(signalled())
    await asyncio.wait({stopping, projector}, return_when=asyncio.FIRST_COMPLETED)
    failed = projector.done()
    if failed:
        log.error("the read-model projector stopped; shutting down")
    stopping.cancel()
    log.info("stopping")
    await stop()
    return 1 if failed else 0
