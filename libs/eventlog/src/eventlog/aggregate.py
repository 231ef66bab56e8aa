"""Loading an aggregate: its state is the fold of its subject's events; its version is the
sequence of the last one (what an append names as its expected sequence)."""

from collections.abc import Callable
from typing import TypeVar

from eventlog.codec import StoredEvent
from eventlog.store import EventStore

State = TypeVar("State")


async def load_aggregate(
    store: EventStore, subject: str, initial: State, evolve: Callable[[State, StoredEvent], State]
) -> tuple[State, int]:
    """The state after every event on subject (initial when there is none) and the subject's version."""
    state, version = initial, 0
    for stored in await store.read(subject):
        state, version = evolve(state, stored), stored.sequence
    return state, version
