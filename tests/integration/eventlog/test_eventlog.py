"""The event log against a real nats-server: dedup, optimistic concurrency, replay, projections."""

import asyncio
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import create_engine

from eventlog import Append, AppendTimeout, ConcurrencyConflict, EventLog, ProjectionRunner
from eventlog.natsserver import NatsServer
from workbench.common.v1.common_pb2 import ChatMessage

from .ledger import BatchLedger, Ledger, applied, rows

LEDGER_SCRIPT = Path(__file__).with_name("ledger.py")


def event(text: str) -> ChatMessage:
    return ChatMessage(role="user", content=text)


def subject(log: EventLog, *parts: str) -> str:
    return ".".join([log.test_prefix, *parts])  # type: ignore[attr-defined]


async def test_a_retried_append_is_stored_once(event_log: EventLog) -> None:
    where = subject(event_log, "a")
    first = await event_log.append(where, event("hello"), msg_id="greeting-1")
    again = await event_log.append(where, event("hello"), msg_id="greeting-1")

    assert again == first
    assert [e.event.content for e in await event_log.read(where)] == ["hello"]


async def test_a_stale_expected_sequence_is_refused_and_nothing_is_written(event_log: EventLog) -> None:
    where = subject(event_log, "record")
    seq = await event_log.append(where, event("v1"), expected_sequence=0)
    await event_log.append(where, event("v2 from browser A"), expected_sequence=seq)

    with pytest.raises(ConcurrencyConflict):
        await event_log.append(where, event("v2 from browser B"), expected_sequence=seq)

    assert [e.event.content for e in await event_log.read(where)] == ["v1", "v2 from browser A"]


async def test_many_appends_in_flight_keep_their_order(event_log: EventLog) -> None:
    items = [Append(subject(event_log, "bulk"), event(str(i)), msg_id=f"bulk-{i}") for i in range(300)]
    seqs = await event_log.append_many(items)

    assert seqs == sorted(seqs) and len(set(seqs)) == 300
    assert [e.event.content for e in await event_log.read(subject(event_log, "bulk"))] == [str(i) for i in range(300)]


async def test_replay_filters_by_subject_and_starts_where_asked(event_log: EventLog) -> None:
    a, b = subject(event_log, "x", "1"), subject(event_log, "y", "1")
    seqs = [await event_log.append(s, event(f"{s}-{i}")) for i in range(3) for s in (a, b)]

    only_x = await event_log.read(subject(event_log, "x", ">"))
    from_fourth = await event_log.read(subject(event_log, ">"), start=seqs[3])
    nothing = await event_log.read(subject(event_log, "z", ">"))

    assert [e.subject for e in only_x] == [a, a, a]
    assert [e.sequence for e in from_fourth] == seqs[3:]
    assert nothing == []
    assert all(e.type_name == "workbench.common.v1.ChatMessage" for e in only_x)


async def test_follow_sees_new_events_only(event_log: EventLog) -> None:
    where = subject(event_log, "live")
    await event_log.append(where, event("old"))
    received: list[str] = []

    async def listen() -> None:
        async for stored in event_log.follow(where, start=None):
            received.append(stored.event.content)  # type: ignore[attr-defined]
            if len(received) == 2:
                return

    listener = asyncio.create_task(listen())
    await asyncio.sleep(0.3)
    await event_log.append(where, event("new 1"))
    await event_log.append(where, event("new 2"))
    await asyncio.wait_for(listener, 10)

    assert received == ["new 1", "new 2"]


@pytest.fixture(params=["sqlite", "postgres"])
def ledger_db(request: pytest.FixtureRequest, tmp_path: Path, postgres_url: str | None) -> Iterator[tuple[str, Engine]]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ledger.db'}"
    elif postgres_url is None:
        pytest.skip("no Postgres server reachable (WB_TEST_POSTGRES_URL)")
    else:
        url = postgres_url
    engine = create_engine(url)
    ledger_tables(engine, drop=True)
    yield url, engine
    ledger_tables(engine, drop=True)
    engine.dispose()


def ledger_tables(engine: Engine, drop: bool) -> None:
    from eventlog.projection import ProjectionCheckpoint

    from .ledger import LedgerCounter, LedgerRow

    tables = [LedgerRow.__table__, LedgerCounter.__table__, ProjectionCheckpoint.__table__]  # type: ignore[attr-defined]
    if drop:
        for table in tables:
            table.drop(engine, checkfirst=True)


async def test_a_projector_killed_midway_applies_every_event_exactly_once(
    event_log: EventLog, ledger_db: tuple[str, Engine]
) -> None:
    url, engine = ledger_db
    where = subject(event_log, "k", "*")
    total = 400
    await event_log.append_many([Append(subject(event_log, "k", str(i % 7)), event(f"e{i}")) for i in range(total)])
    command = [sys.executable, str(LEDGER_SCRIPT), event_log.nc.connected_url.geturl(), event_log.stream, where, url]

    kills = 0
    while True:
        # Slow applies (10 ms each) so that the kill lands inside a batch of 50.
        proc = await asyncio.create_subprocess_exec(*command, "0.01")
        try:
            returncode = await asyncio.wait_for(proc.wait(), 1.5 + kills)
            break
        except TimeoutError:
            proc.kill()
            await proc.wait()
        kills += 1
        assert kills < 8, "the projector never caught up"
    assert returncode == 0
    assert kills >= 1, "the projector finished before it could be killed: the test proved nothing"

    stored = rows(engine)
    assert [seq for seq, _, _ in stored] == sorted({seq for seq, _, _ in stored})
    assert len(stored) == total
    assert applied(engine) == total


async def test_a_rebuild_produces_identical_rows(event_log: EventLog, ledger_db: tuple[str, Engine]) -> None:
    _, engine = ledger_db
    where = subject(event_log, "r", ">")
    await event_log.append_many([Append(subject(event_log, "r", str(i % 3)), event(f"r{i}")) for i in range(120)])
    runner = ProjectionRunner(event_log, engine, Ledger([where]), batch_size=32)

    live = asyncio.create_task(runner.run())
    await runner.wait_for(await event_log.last_sequence())
    live.cancel()
    before = rows(engine)
    await runner.rebuild()

    assert len(before) == 120
    assert rows(engine) == before
    assert applied(engine) == 120


async def test_a_batch_projection_folds_whole_batches_into_the_same_rows(
    event_log: EventLog, ledger_db: tuple[str, Engine]
) -> None:
    _, engine = ledger_db
    where = subject(event_log, "b", ">")
    await event_log.append_many([Append(subject(event_log, "b", str(i % 3)), event(f"b{i}")) for i in range(100)])
    await ProjectionRunner(event_log, engine, Ledger([where]), batch_size=25).catch_up()
    one_by_one = rows(engine)
    batched = BatchLedger([where])

    await ProjectionRunner(event_log, engine, batched, batch_size=25).rebuild()

    assert rows(engine) == one_by_one
    assert applied(engine) == 100
    assert batched.batches == 4


async def test_a_projector_moves_past_event_types_it_cannot_decode(
    event_log: EventLog, ledger_db: tuple[str, Engine]
) -> None:
    """A newer service may append types an older projector has never imported (rolling deploy)."""
    _, engine = ledger_db
    where = subject(event_log, "u", ">")
    await event_log.append(subject(event_log, "u", "1"), event("before"))
    await event_log.js.publish(
        subject(event_log, "u", "1"), b"\x0a\x01x", headers={"Wb-Event-Type": "workbench.future.v9.Unheard"}
    )
    last = await event_log.append(subject(event_log, "u", "1"), event("after"))
    runner = ProjectionRunner(event_log, engine, Ledger([where]))

    assert await runner.catch_up() == last
    assert [content for _, _, content in rows(engine)] == ["before", "after"]


async def test_an_append_whose_acknowledgement_never_comes_times_out(fresh_nats: NatsServer) -> None:
    """nats-py never fails a publish whose answer is lost; a frozen server must not hang the caller."""
    log = await EventLog.connect(fresh_nats.url, stream="FROZEN")
    await log.ensure_stream(["frozen.>"])
    log.ack_timeout = 0.5
    assert fresh_nats.process is not None
    fresh_nats.process.send_signal(signal.SIGSTOP)
    try:
        with pytest.raises(AppendTimeout):
            await log.append_many([Append("frozen.a", event("lost"), msg_id="lost-1")])
        with pytest.raises(AppendTimeout):
            await log.append("frozen.a", event("lost"), msg_id="lost-1")
    finally:
        fresh_nats.process.send_signal(signal.SIGCONT)
    # The retry with the same id after the server is back stores the event once.
    log.ack_timeout = 10
    await log.append("frozen.a", event("lost"), msg_id="lost-1")
    assert [e.event.content for e in await log.read("frozen.a")] == ["lost"]
    await log.close()
