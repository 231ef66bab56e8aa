"""Pure values every domain uses to speak about events: no I/O, standard library and protobuf only.

A domain's `decide()` returns `list[NewEvent]`: the events to append, each with its subject, the
message id that makes a retry a no-op, and (where two writers may race) the subject sequence it
must follow. The application appends them; the domain never touches the store.
"""

from dataclasses import dataclass
from datetime import UTC, datetime

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp


@dataclass(frozen=True, slots=True)
class NewEvent:
    """One event to append: where, what, and how retries and races are detected.

    msg_id: JetStream drops a second append with the same id (within the stream's duplicate window).
    expected_sequence: the subject's last sequence the writer saw (0: the subject must be empty);
    the store refuses the append with ConcurrencyConflict when the subject has moved on.
    """

    subject: str
    event: Message
    msg_id: str | None = None
    expected_sequence: int | None = None
    correlation_id: str | None = None


def to_timestamp(moment: datetime) -> Timestamp:
    """A protobuf Timestamp for an aware datetime."""
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def from_timestamp(stamp: Timestamp) -> datetime | None:
    """The aware UTC datetime of a Timestamp; None for an unset (zero) one."""
    if stamp.seconds == 0 and stamp.nanos == 0:
        return None
    return stamp.ToDatetime(tzinfo=UTC)
