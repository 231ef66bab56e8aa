"""Projections on both event stores and both databases: rows and checkpoint move together, a rebuild
gives the same rows, and an event that cannot be applied is parked instead of wedging the service."""

import asyncio
import contextlib
from collections.abc import AsyncGenerator

from sqlalchemy import Engine, text

from eventlog import EventStore, InMemoryEventStore, NewEvent, ProjectionRunner, RawEvent
from eventlog.store import Subjects
from workbench.common.v1.common_pb2 import ChatMessage

from .ledger import BatchLedger, Ledger, applied, rows


def event(text: str) -> ChatMessage:
    return ChatMessage(role="user", content=text)


async def append(store: EventStore, texts: list[str], prefix: str = "c.l") -> int:
    sequences = await store.append_many(NewEvent(f"{prefix}.{i % 3}", event(text)) for i, text in enumerate(texts))
    return sequences[-1]


async def test_a_rebuild_produces_identical_rows(store: EventStore, ledger_db: tuple[str, Engine]) -> None:
    _, engine = ledger_db
    last = await append(store, [f"r{i}" for i in range(120)])
    runner = ProjectionRunner(store, engine, Ledger(["c.l.>"]), batch_size=32)

    live = asyncio.create_task(runner.run())
    await runner.wait_for(last)
    live.cancel()
    before = rows(engine)
    await runner.rebuild()

    assert len(before) == 120
    assert rows(engine) == before
    assert applied(engine) == 120


async def test_a_batch_projection_folds_whole_batches_into_the_same_rows(
    store: EventStore, ledger_db: tuple[str, Engine]
) -> None:
    _, engine = ledger_db
    await append(store, [f"b{i}" for i in range(100)])
    await ProjectionRunner(store, engine, Ledger(["c.l.>"]), batch_size=25).catch_up()
    one_by_one = rows(engine)
    batched = BatchLedger(["c.l.>"])

    await ProjectionRunner(store, engine, batched, batch_size=25).rebuild()

    assert rows(engine) == one_by_one
    assert applied(engine) == 100
    assert batched.batches == 4


async def test_an_event_that_cannot_be_applied_is_parked_and_the_rest_applied_once(
    store: EventStore, ledger_db: tuple[str, Engine]
) -> None:
    _, engine = ledger_db
    texts = [f"e{i}" for i in range(30)]
    texts[17] = "poison"
    await append(store, texts)
    runner = ProjectionRunner(store, engine, BatchLedger(["c.l.>"], poison="poison"), batch_size=10)

    await runner.catch_up()

    assert [content for _, _, content in rows(engine)] == [t for t in texts if t != "poison"]
    assert applied(engine) == 29  # the batch that failed was rolled back, then applied one by one
    (parked,) = runner.parked_events()
    assert parked.sequence == rows(engine)[16][0] + 1
    assert "cannot fold 'poison'" in parked.error and parked.type_name == "workbench.common.v1.ChatMessage"
    assert runner.status().parked == 1 and runner.position == rows(engine)[-1][0]


async def test_parked_events_apply_on_a_retry_after_the_fix(store: EventStore, ledger_db: tuple[str, Engine]) -> None:
    _, engine = ledger_db
    last = await append(store, ["a", "poison", "b"])
    ledger = Ledger(["c.l.>"], poison="poison")
    runner = ProjectionRunner(store, engine, ledger)
    await runner.catch_up()
    assert (await runner.retry_parked()).still_parked == 1  # not fixed yet: stays parked, attempts counted
    assert runner.parked_events()[0].attempts == 2

    ledger.poison = None  # the fix
    outcome = await runner.retry_parked()

    assert (outcome.applied, outcome.still_parked) == (1, 0)
    assert sorted(content for _, _, content in rows(engine)) == ["a", "b", "poison"]
    assert runner.parked_events() == [] and runner.position == last
    # A new runner (a restart) finds nothing parked and nothing to apply twice.
    again = ProjectionRunner(store, engine, Ledger(["c.l.>"]))
    assert await again.catch_up() == last and again.status().parked == 0
    assert applied(engine) == 3


async def test_a_live_projector_parks_and_keeps_following(store: EventStore, ledger_db: tuple[str, Engine]) -> None:
    _, engine = ledger_db
    runner = ProjectionRunner(store, engine, Ledger(["c.l.>"], poison="poison"))
    live = asyncio.create_task(runner.run())
    try:
        await append(store, ["one", "poison"])
        last = await append(store, ["two", "three"])
        await runner.wait_for(last)
        assert not live.done()
    finally:
        live.cancel()
    assert [content for _, _, content in rows(engine)] == ["one", "two", "three"]
    assert runner.status().parked == 1


class SwallowsOneCancellation(InMemoryEventStore):
    """A log whose subscription swallows the first cancellation, as nats-py's does on Python 3.11 when
    the server's reply to its consumer request arrives together with the cancellation (wait_for)."""

    async def follow_raw(self, subjects: Subjects, start: int | None = 1) -> AsyncGenerator[RawEvent, None]:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(3600)  # subscribing
        async for raw in super().follow_raw(subjects, start):
            yield raw


async def test_a_projector_stops_even_when_its_subscription_swallowed_the_cancellation(
    ledger_db: tuple[str, Engine],
) -> None:
    _, engine = ledger_db
    live = asyncio.create_task(ProjectionRunner(SwallowsOneCancellation(), engine, Ledger(["c.l.>"])).run())
    await asyncio.sleep(0.05)  # the runner is subscribing

    live.cancel()

    done, _ = await asyncio.wait({live}, timeout=10)
    assert done == {live} and live.cancelled()


async def test_a_database_that_is_away_is_waited_for_not_blamed_on_the_event(
    store: EventStore, ledger_db: tuple[str, Engine]
) -> None:
    _, engine = ledger_db
    ledger = Ledger(["c.l.>"])
    ledger.database_down_for = 2
    runner = ProjectionRunner(store, engine, ledger, retry_delay_s=0.05)
    live = asyncio.create_task(runner.run())
    try:
        last = await append(store, ["kept", "also kept"])
        await runner.wait_for(last)
    finally:
        live.cancel()
    assert [content for _, _, content in rows(engine)] == ["kept", "also kept"]
    assert runner.parked_events() == [] and applied(engine) == 2


async def test_tables_of_an_older_shape_are_dropped_and_rebuilt_from_the_log(
    store: EventStore, ledger_db: tuple[str, Engine]
) -> None:
    """A new version of a projection adds a column: the old rows are dropped and rebuilt, never misread."""
    _, engine = ledger_db
    last = await append(store, ["a", "b"])
    await ProjectionRunner(store, engine, Ledger(["c.l.>"])).catch_up()
    with engine.begin() as connection:  # as a version from before fingerprints would have left it
        connection.execute(text("DROP TABLE test_ledger_rows"))
        connection.execute(text("CREATE TABLE test_ledger_rows (id INTEGER PRIMARY KEY, sequence INTEGER)"))
        connection.execute(text("DELETE FROM projection_schemas"))

    runner = ProjectionRunner(store, engine, Ledger(["c.l.>"]))

    assert runner.load_position() == 0  # the old checkpoint went with the old rows
    assert await runner.catch_up() == last
    assert [content for _, _, content in rows(engine)] == ["a", "b"]


async def test_tables_whose_fingerprint_differs_are_rebuilt_even_with_the_same_columns(
    store: EventStore, ledger_db: tuple[str, Engine]
) -> None:
    """A column's type or an index may change without its name: the fingerprint tells."""
    _, engine = ledger_db
    last = await append(store, ["a", "b"])
    await ProjectionRunner(store, engine, Ledger(["c.l.>"])).catch_up()
    with engine.begin() as connection:
        connection.execute(text("UPDATE projection_schemas SET fingerprint = 'older' WHERE name = 'test-ledger'"))

    runner = ProjectionRunner(store, engine, Ledger(["c.l.>"]))

    assert runner.load_position() == 0
    assert await runner.catch_up() == last
    assert applied(engine) == 2  # the counter too was dropped and rebuilt, not applied on top


async def test_a_projection_whose_shape_is_unchanged_keeps_its_rows_and_position(
    store: EventStore, ledger_db: tuple[str, Engine]
) -> None:
    _, engine = ledger_db
    last = await append(store, ["a", "b"])
    await ProjectionRunner(store, engine, Ledger(["c.l.>"])).catch_up()

    again = ProjectionRunner(store, engine, Ledger(["c.l.>"]))

    assert again.load_position() == last
    assert applied(engine) == 2
