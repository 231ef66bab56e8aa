"""Loading an aggregate: its state is the fold of its subject's events.

Every domain's evolve has the shape evolve(state, event, sequence) -> state, and keeps the sequence
of the last event as the state's version: what a decided NewEvent names as its expected sequence.
"""

from collections.abc import Callable
from typing import TypeVar

from google.protobuf.message import Message

from eventlog.store import EventStore

State = TypeVar("State")


async def load_aggregate(
    store: EventStore, subject: str, initial: State, evolve: Callable[[State, Message, int], State]
) -> State:
    """The state after every event on subject (initial when there is none)."""
    state = initial
    for stored in await store.read(subject):
        state = evolve(state, stored.event, stored.sequence)
    return state
