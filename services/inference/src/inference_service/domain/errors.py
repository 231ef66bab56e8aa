"""Errors of the inference context: the shared kinds (servicehost.errors), which the gRPC edge maps
to status codes in one place."""

from servicehost.errors import Conflict, FailedPrecondition, InvalidInput, NotFound, ServiceError, Unavailable

__all__ = ["Conflict", "FailedPrecondition", "InvalidInput", "NotFound", "ServiceError", "Unavailable"]
