"""The event-store port: what every service needs from the event log, whoever stores it.

Two implementations keep the same promises, checked by one contract test suite
(tests/integration/eventlog/test_event_store_contract.py):
- JetStreamEventStore (jetstream.py): the real one, one JetStream stream;
- InMemoryEventStore (memory.py): for unit tests of application layers, no sockets.

The promises:
- append returns the event's stream sequence; sequences grow by one per stored event, over all subjects;
- an append whose msg_id was stored before is not stored again and answers the first sequence;
- an append with expected_sequence fails with ConcurrencyConflict unless it equals the subject's last
  sequence (0: the subject has no events), and the check comes before deduplication (as nats-server
  2.15 does it): a retry with a stale expected sequence is a conflict, not a duplicate;
- reads and follows yield events in sequence order, filtered by NATS subject patterns (`*`, `>`).
"""

from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Iterable, Sequence
from typing import Protocol

from eventlog.codec import RawEvent, StoredEvent
from eventlog.events import NewEvent

Subjects = str | Sequence[str]


class PendingAppend(Protocol):
    """An append under way (see EventStore.start_append)."""

    @property
    def new(self) -> NewEvent: ...

    async def confirm(self) -> int:
        """Waits until the event is stored and returns its sequence (raises what append would)."""
        ...


class EventStore(ABC):
    """Appends, reads and follows the workbench's events."""

    @abstractmethod
    async def append(self, new: NewEvent) -> int:
        """Stores one event and returns its stream sequence (see the module's promises)."""

    @abstractmethod
    async def start_append(self, new: NewEvent) -> PendingAppend:
        """Starts an append without waiting for it: many can be in flight (hot paths)."""

    async def append_many(self, news: Iterable[NewEvent]) -> list[int]:
        """Appends many events with many in flight; returns their sequences in order.

        Every event has been stored (or deduplicated) when this returns. Expected sequences are
        checked one by one against the subject as each arrives, so chain none within one call.
        """
        pending = [await self.start_append(new) for new in news]
        return [await item.confirm() for item in pending]

    @abstractmethod
    def replay_raw(self, subjects: Subjects, start: int = 1) -> AsyncGenerator[RawEvent, None]:
        """The stored messages on the subjects from sequence start up to now, in order, undecoded."""

    @abstractmethod
    def follow_raw(self, subjects: Subjects, start: int | None = 1) -> AsyncGenerator[RawEvent, None]:
        """The messages on the subjects from sequence start (None: only new ones), forever."""

    @abstractmethod
    async def get(self, sequence: int) -> RawEvent | None:
        """The message stored at a sequence; None when there is none (never stored, or removed)."""

    @abstractmethod
    async def last_sequence(self, subject: str | None = None) -> int:
        """The stream's last sequence, or the last sequence of one subject (0 when none)."""

    @abstractmethod
    async def count(self, subject: str) -> int:
        """How many events a subject (wildcards allowed) holds."""

    @abstractmethod
    async def close(self) -> None:
        """Lets go of the store (pending appends are flushed first)."""

    async def read(self, subjects: Subjects, start: int = 1) -> list[StoredEvent]:
        """Every event on the subjects from sequence start up to now, in order."""
        return [event async for event in self.replay(subjects, start)]

    async def replay(self, subjects: Subjects, start: int = 1) -> AsyncGenerator[StoredEvent, None]:
        """Decoded replay_raw; raises UndecodableEvent on a message it cannot decode."""
        async for raw in self.replay_raw(subjects, start):
            event = raw.decode()
            if event is not None:
                yield event

    async def follow(self, subjects: Subjects, start: int | None = 1) -> AsyncGenerator[StoredEvent, None]:
        """Decoded follow_raw. Close it (contextlib.aclosing) when done early."""
        async for raw in self.follow_raw(subjects, start):
            event = raw.decode()
            if event is not None:
                yield event


def subject_list(subjects: Subjects) -> list[str]:
    return [subjects] if isinstance(subjects, str) else list(subjects)
