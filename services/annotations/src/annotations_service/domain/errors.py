"""The annotations context's errors; the gRPC edge maps each class to one status code."""


class AnnotationError(Exception):
    """Base class of every error this service reports to its callers."""


class InvalidInput(AnnotationError):
    """The request itself is wrong (INVALID_ARGUMENT)."""


class NotFound(AnnotationError):
    """Something the request names does not exist (NOT_FOUND)."""


class FailedPrecondition(AnnotationError):
    """The request is well formed but the system is not in a state that allows it (FAILED_PRECONDITION)."""


class Conflict(AnnotationError):
    """Someone else changed the record's annotations first (ABORTED): reload and try again."""


class Unavailable(AnnotationError):
    """A service this one depends on cannot be reached (UNAVAILABLE)."""
