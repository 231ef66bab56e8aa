"""The one place where errors become HTTP responses: {"error": "<status name>", "detail": "<message>"}.

A gRPC status from a service keeps its name and the service's message (services word their messages
for users: "line 3: field "prompt" must be a string"); anything unexpected is a 500 that says nothing
about the gateway's insides.
"""

import logging
from http import HTTPStatus
from typing import Any

import grpc
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.types import ExceptionHandlersMap

log = logging.getLogger(__name__)

GRPC_TO_HTTP: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 413,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}

INTERNAL_DETAIL = "internal error; see the gateway log"


def error_response(status: int, error: str, detail: str, **extra: Any) -> Response[dict[str, Any]]:
    return Response({"error": error, "detail": detail, **extra}, status_code=status)


def grpc_error_handler(_: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    assert isinstance(exc, grpc.aio.AioRpcError)
    code = exc.code()
    status = GRPC_TO_HTTP.get(code)
    if status is None:
        log.error("service call failed with %s: %s", code.name, exc.details())
        return error_response(500, "INTERNAL", INTERNAL_DETAIL)
    return error_response(status, code.name, exc.details() or code.name.replace("_", " ").lower())


def http_error_handler(_: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    assert isinstance(exc, HTTPException)
    extra: dict[str, Any] = {}
    if isinstance(exc, ValidationException) and exc.extra:
        extra["fields"] = exc.extra
    try:
        name = HTTPStatus(exc.status_code).name
    except ValueError:
        name = str(exc.status_code)
    response = error_response(exc.status_code, name, exc.detail, **extra)
    response.headers.update(exc.headers or {})
    return response


def internal_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    log.exception("unhandled error in %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "INTERNAL", INTERNAL_DETAIL)


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    grpc.aio.AioRpcError: grpc_error_handler,
    HTTPException: http_error_handler,
    Exception: internal_error_handler,
}
