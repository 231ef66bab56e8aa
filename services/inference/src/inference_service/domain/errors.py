"""The inference domain's errors; the gRPC edge maps each class to one status code."""


class InferenceError(Exception):
    """Base class of the errors this service reports to its callers."""


class NotFound(InferenceError):
    """A model, dataset or run that does not exist."""


class InvalidInput(InferenceError):
    """A request or a models file that breaks a rule; the message says which and how to fix it."""


class FailedPrecondition(InferenceError):
    """The request is well formed but the system is not in a state that allows it."""


class Conflict(InferenceError):
    """Someone else changed the same aggregate first."""


class Unavailable(InferenceError):
    """A service this one depends on cannot be reached right now; retrying later may work."""
