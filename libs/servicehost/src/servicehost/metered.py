"""The event store as the services see it: the same port, with every append counted for metrics."""

from collections.abc import AsyncGenerator

from eventlog import EventStore, NewEvent, PendingAppend, RawEvent
from eventlog.codec import type_name
from eventlog.store import Subjects
from servicehost import metrics


class MeteredEventStore(EventStore):
    def __init__(self, inner: EventStore) -> None:
        self.inner = inner

    async def append(self, new: NewEvent) -> int:
        sequence = await self.inner.append(new)
        metrics.count_appended(type_name(new.event))
        return sequence

    async def start_append(self, new: NewEvent) -> PendingAppend:
        pending = await self.inner.start_append(new)
        metrics.count_appended(type_name(new.event))
        return pending

    def replay_raw(self, subjects: Subjects, start: int = 1) -> AsyncGenerator[RawEvent, None]:
        return self.inner.replay_raw(subjects, start)

    def follow_raw(self, subjects: Subjects, start: int | None = 1) -> AsyncGenerator[RawEvent, None]:
        return self.inner.follow_raw(subjects, start)

    async def get(self, sequence: int) -> RawEvent | None:
        return await self.inner.get(sequence)

    async def last_sequence(self, subject: str | None = None) -> int:
        return await self.inner.last_sequence(subject)

    async def count(self, subject: str) -> int:
        return await self.inner.count(subject)

    async def close(self) -> None:
        await self.inner.close()
