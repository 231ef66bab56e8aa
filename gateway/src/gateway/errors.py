"""The one place where errors become HTTP responses: {"error": "<status name>", "detail": "<message>"}.

A gRPC status from a service keeps its name and the service's message (services word their messages
for users: "line 3: field "prompt" must be a string"); anything unexpected is a 500 that says nothing
about the gateway's insides.

A status whose details hold a ValidationReport (an upload refused for bad lines) adds the report to
the body: "problems" ([{"line", "field", "reason"}], the first ones in file order), "more" (how many
beyond those) and "line_word" ("line" for JSONL, "row" for CSV and Parquet).

RESOURCE_EXHAUSTED is the one status whose words are not the service's: gRPC itself raises it when an
answer is over the message size limit (a read, not the user's upload), so it is a 503 with a detail
of our own. Uploads over WB_MAX_UPLOAD_BYTES are refused by the gateway itself with 413.
"""

import logging
from http import HTTPStatus
from typing import Any

import grpc
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.types import ExceptionHandlersMap

from gateway.access import AccessError, NotLoaded, UnknownUser
from gateway.views import report_view
from servicehost.grpc_client import status_details
from workbench.datasets.v1 import datasets_pb2 as ds

log = logging.getLogger(__name__)

GRPC_TO_HTTP: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    # Not 413: the user sent nothing too large; a service's answer was, or a service is out of resources.
    grpc.StatusCode.RESOURCE_EXHAUSTED: 503,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}

INTERNAL_DETAIL = "internal error; see the gateway log"
EXHAUSTED_DETAIL = (
    "a service's answer was too large to pass on, or the service is out of resources; "
    "ask for less (e.g. a smaller page with limit) or retry later"
)


class ErrorResponse(Exception):
    """Raised by a route to answer with the common error shape and extra fields of its own."""

    def __init__(self, status: int, error: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail
        self.extra = extra


def error_response(status: int, error: str, detail: str, **extra: Any) -> Response[dict[str, Any]]:
    return Response({"error": error, "detail": detail, **extra}, status_code=status)


def grpc_error_parts(exc: grpc.aio.AioRpcError) -> tuple[int, str, str]:
    """The HTTP status, error name and detail for a failed service call (logs what it does not show)."""
    code = exc.code()
    status = GRPC_TO_HTTP.get(code)
    if status is None:
        log.error("service call failed with %s: %s", code.name, exc.details())
        return 500, "INTERNAL", INTERNAL_DETAIL
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        log.warning("service call failed with %s: %s", code.name, exc.details())
        return status, code.name, EXHAUSTED_DETAIL
    return status, code.name, exc.details() or code.name.replace("_", " ").lower()


def grpc_error_extra(exc: grpc.aio.AioRpcError) -> dict[str, Any]:
    """What the status details add to the error body (a validation report's problems), else nothing."""
    if exc.code() not in GRPC_TO_HTTP:  # an internal error's details stay in the service's log
        return {}
    try:
        details = status_details(exc)
    except ValueError:  # trailers that do not match the status: say what the status says, no more
        log.warning("service call failed with status details that do not match its status")
        return {}
    for detail in details:
        if isinstance(detail, ds.ValidationReport):
            report = report_view(detail)
            return {"problems": report.problems, "more": report.more, "line_word": report.line_word}
    return {}


def error_parts(exc: BaseException) -> tuple[int, str, str]:
    """As grpc_error_parts for a service's status; anything else is an internal error (logged)."""
    if isinstance(exc, grpc.aio.AioRpcError):
        return grpc_error_parts(exc)
    log.error("unexpected error", exc_info=exc)
    return 500, "INTERNAL", INTERNAL_DETAIL


def grpc_error_handler(_: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    assert isinstance(exc, grpc.aio.AioRpcError)
    return error_response(*grpc_error_parts(exc), **grpc_error_extra(exc))


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


def error_response_handler(_: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    assert isinstance(exc, ErrorResponse)
    return error_response(exc.status, exc.error, exc.detail, **exc.extra)


def access_error_handler(_: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    if isinstance(exc, UnknownUser):
        return error_response(404, "NOT_FOUND", str(exc))
    return error_response(400, "BAD_REQUEST", str(exc))


def unavailable_handler(_: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    response = error_response(503, "SERVICE_UNAVAILABLE", str(exc))
    response.headers["Retry-After"] = "1"
    return response


def internal_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    log.exception("unhandled error in %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "INTERNAL", INTERNAL_DETAIL)


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    grpc.aio.AioRpcError: grpc_error_handler,
    HTTPException: http_error_handler,
    ErrorResponse: error_response_handler,
    AccessError: access_error_handler,
    NotLoaded: unavailable_handler,
    Exception: internal_error_handler,
}
