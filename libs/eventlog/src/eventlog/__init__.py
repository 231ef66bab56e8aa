"""The workbench's event log: the event-store port, its JetStream and in-memory implementations,
and projections with checkpoints. No domain logic, no gRPC, no process management."""

from eventlog.aggregate import load_aggregate
from eventlog.codec import RawEvent, StoredEvent
from eventlog.errors import AppendTimeout, ConcurrencyConflict, EventLogError, UndecodableEvent, UnknownEventType
from eventlog.events import NewEvent, from_timestamp, to_timestamp
from eventlog.jetstream import (
    DEFAULT_STREAM,
    DUPLICATE_IN_PROCESS,
    JetStreamEventStore,
    ReplicaMismatch,
    StreamSettings,
    nats_servers,
    patiently,
    replica_mismatch,
    settle_async_errors,
)
from eventlog.memory import InMemoryEventStore
from eventlog.projection import (
    BatchProjection,
    ParkedEvent,
    Projection,
    ProjectionCheckpoint,
    ProjectionRunner,
    ProjectionStatus,
    RetryOutcome,
)
from eventlog.store import EventStore, PendingAppend
from eventlog.subjects import token, untoken

__all__ = [
    "DEFAULT_STREAM",
    "DUPLICATE_IN_PROCESS",
    "AppendTimeout",
    "BatchProjection",
    "ConcurrencyConflict",
    "EventLogError",
    "EventStore",
    "InMemoryEventStore",
    "JetStreamEventStore",
    "NewEvent",
    "ParkedEvent",
    "PendingAppend",
    "Projection",
    "ProjectionCheckpoint",
    "ProjectionRunner",
    "ProjectionStatus",
    "RawEvent",
    "ReplicaMismatch",
    "RetryOutcome",
    "StoredEvent",
    "StreamSettings",
    "UndecodableEvent",
    "UnknownEventType",
    "from_timestamp",
    "load_aggregate",
    "nats_servers",
    "patiently",
    "replica_mismatch",
    "settle_async_errors",
    "to_timestamp",
    "token",
    "untoken",
]
