"""Errors of the annotations context: the shared kinds of servicehost.errors, each mapped to one status code
by the gRPC edge."""

from servicehost.errors import Conflict, FailedPrecondition, InvalidInput, NotFound, Unavailable

__all__ = ["Conflict", "FailedPrecondition", "InvalidInput", "NotFound", "Unavailable"]
