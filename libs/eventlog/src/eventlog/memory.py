"""An event store in memory, keeping the same promises as the JetStream one (see store.py).

For unit tests of application layers: no sockets, microseconds per append. Not for production:
nothing survives the process.
"""

import asyncio
from collections.abc import AsyncGenerator
from datetime import UTC, datetime

from eventlog.codec import RawEvent, encode_headers
from eventlog.errors import ConcurrencyConflict
from eventlog.events import NewEvent
from eventlog.store import EventStore, Subjects, subject_list
from eventlog.subjects import subject_matches


class InMemoryEventStore(EventStore):
    """Every event in a list; msg ids remembered for ever (an unbounded duplicate window)."""

    def __init__(self) -> None:
        self.events: list[RawEvent] = []
        self._last_by_subject: dict[str, int] = {}
        self._by_msg_id: dict[str, int] = {}
        self._appended = asyncio.Condition()

    async def append(self, new: NewEvent) -> int:
        last = self._last_by_subject.get(new.subject, 0)
        if new.expected_sequence is not None and new.expected_sequence != last:
            raise ConcurrencyConflict(new.subject, new.expected_sequence, f"last sequence is {last}")
        if new.msg_id is not None and new.msg_id in self._by_msg_id:
            return self._by_msg_id[new.msg_id]
        sequence = len(self.events) + 1
        headers = encode_headers(new.event, new.msg_id, new.expected_sequence, new.correlation_id)
        self.events.append(RawEvent(sequence, new.subject, new.event.SerializeToString(), headers, datetime.now(UTC)))
        self._last_by_subject[new.subject] = sequence
        if new.msg_id is not None:
            self._by_msg_id[new.msg_id] = sequence
        async with self._appended:
            self._appended.notify_all()
        return sequence

    async def start_append(self, new: NewEvent) -> "_Done":
        # Appended at once, in call order, like publishes on one connection; errors surface on confirm().
        try:
            return _Done(new, await self.append(new), None)
        except ConcurrencyConflict as conflict:
            return _Done(new, 0, conflict)

    async def get(self, sequence: int) -> RawEvent | None:
        return self.events[sequence - 1] if 1 <= sequence <= len(self.events) else None

    async def last_sequence(self, subject: str | None = None) -> int:
        if subject is None:
            return len(self.events)
        if "*" not in subject and ">" not in subject:
            return self._last_by_subject.get(subject, 0)
        return max((seq for name, seq in self._last_by_subject.items() if subject_matches(subject, name)), default=0)

    async def count(self, subject: str) -> int:
        return sum(1 for event in self.events if subject_matches(subject, event.subject))

    async def close(self) -> None:
        return None

    async def replay_raw(self, subjects: Subjects, start: int = 1) -> AsyncGenerator[RawEvent, None]:
        wanted = subject_list(subjects)
        end = len(self.events)
        matching = [event for event in self.events[max(start, 1) - 1 : end] if _matches(wanted, event)]
        for position, event in enumerate(matching):
            yield _with_pending(event, len(matching) - position - 1)

    async def follow_raw(self, subjects: Subjects, start: int | None = 1) -> AsyncGenerator[RawEvent, None]:
        wanted = subject_list(subjects)
        position = len(self.events) if start is None else max(start, 1) - 1
        while True:
            await self._wait_beyond(position)
            arrived = [event for event in self.events[position:] if _matches(wanted, event)]
            position = len(self.events)
            for index, event in enumerate(arrived):
                yield _with_pending(event, len(arrived) - index - 1)

    async def _wait_beyond(self, position: int) -> None:
        async with self._appended:
            await self._appended.wait_for(lambda: len(self.events) > position)


class _Done:
    def __init__(self, new: NewEvent, sequence: int, error: Exception | None) -> None:
        self.new = new
        self._sequence = sequence
        self._error = error

    async def confirm(self) -> int:
        if self._error is not None:
            raise self._error
        return self._sequence


def _matches(patterns: list[str], event: RawEvent) -> bool:
    return any(subject_matches(pattern, event.subject) for pattern in patterns)


def _with_pending(event: RawEvent, pending: int) -> RawEvent:
    return RawEvent(event.sequence, event.subject, event.data, event.headers, event.time, pending)
