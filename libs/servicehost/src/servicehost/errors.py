"""The kinds of failure every service reports: a domain raises them (or its own subclasses), and
the gRPC edge maps each kind to one status code (grpc_server.STATUS_OF). The standard library and
protobuf only, so a domain may import it."""

from collections.abc import Sequence

from google.protobuf.message import Message


class ServiceError(Exception):
    """Base class of the errors a service raises on purpose; the message is for the user.

    details: contract messages that say more than the message can (a validation report); they
    travel in the gRPC status details (google.rpc.Status), for clients that want them.
    """

    def __init__(self, message: str, details: Sequence[Message] = ()) -> None:
        super().__init__(message)
        self.details = tuple(details)


class InvalidInput(ServiceError):
    """The request itself is wrong; the message says what and how to fix it (INVALID_ARGUMENT)."""


class NotFound(ServiceError):
    """Something the request names does not exist (NOT_FOUND)."""


class Conflict(ServiceError):
    """Someone else changed the same thing first: reload and try again (ABORTED)."""


class FailedPrecondition(ServiceError):
    """The request is well formed, but the system is not in a state that allows it (FAILED_PRECONDITION)."""


class Unavailable(ServiceError):
    """Something this service depends on cannot be reached now; retrying later may work (UNAVAILABLE)."""


class DataLoss(ServiceError):
    """Stored data is missing or damaged (DATA_LOSS)."""
