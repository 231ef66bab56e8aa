"""The workbench's shared event-log library (no domain logic)."""

from eventlog.codec import StoredEvent
from eventlog.errors import AppendTimeout, ConcurrencyConflict, EventLogError, UnknownEventType
from eventlog.log import DEFAULT_STREAM, Append, EventLog
from eventlog.projection import BatchProjection, Projection, ProjectionCheckpoint, ProjectionRunner
from eventlog.subjects import token, untoken

__all__ = [
    "DEFAULT_STREAM",
    "Append",
    "AppendTimeout",
    "BatchProjection",
    "ConcurrencyConflict",
    "EventLog",
    "EventLogError",
    "Projection",
    "ProjectionCheckpoint",
    "ProjectionRunner",
    "StoredEvent",
    "UnknownEventType",
    "token",
    "untoken",
]
