"""The promises of the event-store port (eventlog/store.py), checked against both implementations:
the real JetStream store on a real nats-server, and the in-memory one that unit tests rely on.
A promise the in-memory store broke would let unit tests pass on behaviour production lacks.
The `store` fixture (conftest.py) runs every test once on each."""

import asyncio

import pytest

from eventlog import ConcurrencyConflict, EventStore, NewEvent
from workbench.common.v1.common_pb2 import ChatMessage


def event(text: str) -> ChatMessage:
    return ChatMessage(role="user", content=text)


def contents(events: list) -> list[str]:  # type: ignore[type-arg]
    return [stored.event.content for stored in events]


async def test_sequences_count_every_stored_event_across_subjects(store: EventStore) -> None:
    first = await store.append(NewEvent("c.a.1", event("one")))
    second = await store.append(NewEvent("c.b.1", event("two")))

    assert second == first + 1
    assert await store.last_sequence() == second
    assert await store.last_sequence("c.a.1") == first
    assert await store.last_sequence("c.never") == 0
    assert await store.last_sequence("c.a.>") == first  # a pattern: the newest event under it
    assert await store.last_sequence("c.*.1") == second


async def test_a_retried_append_is_stored_once_and_answers_the_first_sequence(store: EventStore) -> None:
    first = await store.append(NewEvent("c.a", event("hello"), msg_id="greeting-1"))
    again = await store.append(NewEvent("c.a", event("hello"), msg_id="greeting-1"))

    assert again == first
    assert contents(await store.read("c.a")) == ["hello"]


async def test_a_stale_expected_sequence_is_refused_and_nothing_is_written(store: EventStore) -> None:
    seq = await store.append(NewEvent("c.record", event("v1"), expected_sequence=0))
    await store.append(NewEvent("c.record", event("v2 from browser A"), expected_sequence=seq))

    with pytest.raises(ConcurrencyConflict):
        await store.append(NewEvent("c.record", event("v2 from browser B"), expected_sequence=seq))
    with pytest.raises(ConcurrencyConflict):
        await store.append(NewEvent("c.record", event("as if new"), expected_sequence=0))

    assert contents(await store.read("c.record")) == ["v1", "v2 from browser A"]


async def test_the_expected_sequence_is_checked_before_deduplication(store: EventStore) -> None:
    """As nats-server 2.15 does: a retry that names a version the subject has left is a conflict."""
    seq = await store.append(NewEvent("c.doc", event("v1"), msg_id="edit-1", expected_sequence=0))

    with pytest.raises(ConcurrencyConflict):
        await store.append(NewEvent("c.doc", event("v1"), msg_id="edit-1", expected_sequence=0))
    assert await store.append(NewEvent("c.doc", event("v1"), msg_id="edit-1", expected_sequence=seq)) == seq


async def test_many_appends_in_flight_keep_their_order(store: EventStore) -> None:
    seqs = await store.append_many(NewEvent("c.bulk", event(str(i)), msg_id=f"bulk-{i}") for i in range(300))

    assert seqs == sorted(seqs) and len(set(seqs)) == 300
    assert contents(await store.read("c.bulk")) == [str(i) for i in range(300)]


async def test_a_conflict_in_flight_surfaces_when_it_is_confirmed(store: EventStore) -> None:
    await store.append(NewEvent("c.x", event("first")))
    pending = await store.start_append(NewEvent("c.x", event("stale"), expected_sequence=0))

    assert pending.new.subject == "c.x"
    with pytest.raises(ConcurrencyConflict):
        await pending.confirm()


async def test_reads_filter_by_subject_pattern_and_start_where_asked(store: EventStore) -> None:
    seqs = [await store.append(NewEvent(s, event(f"{s}-{i}"))) for i in range(3) for s in ("c.x.1", "c.y.1")]

    only_x = await store.read("c.x.>")
    one_token = await store.read("c.*.1")
    both_lists = await store.read(["c.x.1", "c.y.1"], start=seqs[3])
    nothing = await store.read("c.z.>")

    assert [e.subject for e in only_x] == ["c.x.1"] * 3
    assert [e.sequence for e in one_token] == seqs
    assert [e.sequence for e in both_lists] == seqs[3:]
    assert nothing == []
    assert all(e.type_name == "workbench.common.v1.ChatMessage" for e in only_x)


async def test_count_counts_a_pattern(store: EventStore) -> None:
    for i in range(4):
        await store.append(NewEvent(f"c.n.{i % 2}", event(str(i))))

    assert await store.count("c.n.>") == 4
    assert await store.count("c.n.1") == 2
    assert await store.count("c.none.>") == 0


async def test_a_replay_says_how_many_events_follow_each_one(store: EventStore) -> None:
    for i in range(3):
        await store.append(NewEvent("c.p", event(str(i))))

    assert [raw.pending async for raw in store.replay_raw("c.p")] == [2, 1, 0]


async def test_get_answers_the_message_at_a_sequence(store: EventStore) -> None:
    seq = await store.append(NewEvent("c.g", event("there"), msg_id="g-1"))

    found = await store.get(seq)
    assert found is not None
    decoded = found.decode()
    assert decoded is not None and decoded.event == event("there") and decoded.subject == "c.g"
    assert await store.get(seq + 1000) is None


async def test_follow_sees_new_events_only_when_asked_to(store: EventStore) -> None:
    await store.append(NewEvent("c.live", event("old")))
    received: list[str] = []

    async def listen() -> None:
        async for stored in store.follow("c.live", start=None):
            received.append(stored.event.content)  # type: ignore[attr-defined]
            if len(received) == 2:
                return

    listener = asyncio.create_task(listen())
    await asyncio.sleep(0.3)
    await store.append(NewEvent("c.live", event("new 1")))
    await store.append(NewEvent("c.other", event("not this one")))
    await store.append(NewEvent("c.live", event("new 2")))
    await asyncio.wait_for(listener, 10)

    assert received == ["new 1", "new 2"]


async def test_follow_from_a_sequence_replays_then_keeps_going(store: EventStore) -> None:
    first = await store.append(NewEvent("c.f", event("a")))
    await store.append(NewEvent("c.f", event("b")))
    received: list[str] = []

    async def listen() -> None:
        async for stored in store.follow("c.f", start=first):
            received.append(stored.event.content)  # type: ignore[attr-defined]
            if len(received) == 3:
                return

    listener = asyncio.create_task(listen())
    await asyncio.sleep(0.2)
    await store.append(NewEvent("c.f", event("c")))
    await asyncio.wait_for(listener, 10)

    assert received == ["a", "b", "c"]
