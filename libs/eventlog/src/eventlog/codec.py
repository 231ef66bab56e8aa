"""Turns protobuf events into stored messages and back.

The event type travels in a header as the message's full proto name, so any service that has
imported the generated module can decode it.
"""

from dataclasses import dataclass, field
from datetime import datetime

from google.protobuf import descriptor_pool, message_factory
from google.protobuf.message import DecodeError, Message

from eventlog.errors import UndecodableEvent, UnknownEventType

TYPE_HEADER = "Wb-Event-Type"
MSG_ID_HEADER = "Nats-Msg-Id"
EXPECTED_SEQUENCE_HEADER = "Nats-Expected-Last-Subject-Sequence"
CORRELATION_HEADER = "Wb-Correlation-Id"


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as read back from the log, decoded, with its position."""

    sequence: int
    subject: str
    type_name: str
    event: Message
    time: datetime | None
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class RawEvent:
    """A stored message before decoding: what a store yields, so a reader can tell "cannot decode"
    from "not there". pending: how many messages on the reader's subjects followed it when it was
    delivered (how far behind the reader was)."""

    sequence: int
    subject: str
    data: bytes
    headers: dict[str, str] = field(default_factory=dict)
    time: datetime | None = None
    pending: int = 0

    @property
    def type_name(self) -> str | None:
        return self.headers.get(TYPE_HEADER)

    def decode(self) -> StoredEvent | None:
        """The event; None for a message that carries no event type (not written by this library).

        Raises UndecodableEvent (UnknownEventType for a type no imported module defines).
        """
        name = self.type_name
        if name is None:
            return None
        return StoredEvent(self.sequence, self.subject, name, decode_event(name, self.data), self.time, self.headers)


def type_name(event: Message) -> str:
    return event.DESCRIPTOR.full_name


def encode_headers(
    event: Message,
    msg_id: str | None,
    expected_sequence: int | None,
    correlation_id: str | None,
) -> dict[str, str]:
    headers = {TYPE_HEADER: type_name(event)}
    if msg_id is not None:
        headers[MSG_ID_HEADER] = msg_id
    if expected_sequence is not None:
        headers[EXPECTED_SEQUENCE_HEADER] = str(expected_sequence)
    if correlation_id is not None:
        headers[CORRELATION_HEADER] = correlation_id
    return headers


_classes: dict[str, type[Message]] = {}


def message_class(name: str) -> type[Message]:
    """The generated class for a full proto name; its module must have been imported."""
    cls = _classes.get(name)
    if cls is None:
        try:
            descriptor = descriptor_pool.Default().FindMessageTypeByName(name)
        except KeyError:
            raise UnknownEventType(f"no imported proto module defines {name!r}") from None
        cls = message_factory.GetMessageClass(descriptor)
        _classes[name] = cls
    return cls


def decode_event(name: str, payload: bytes) -> Message:
    event = message_class(name)()
    try:
        event.ParseFromString(payload)
    except DecodeError as error:
        raise UndecodableEvent(f"the payload is not a valid {name}: {error}") from None
    return event
