"""What only the JetStream store can show: a projector process killed mid-batch, an append whose
acknowledgement never comes, a message no imported module can decode."""

import asyncio
import signal
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine

from devstack.faults import freeze
from devstack.natsserver import NatsServer
from eventlog import AppendTimeout, JetStreamEventStore, NewEvent, ProjectionRunner, StreamSettings
from workbench.common.v1.common_pb2 import ChatMessage

from .ledger import Ledger, applied, rows

LEDGER_SCRIPT = Path(__file__).with_name("ledger.py")


def event(text: str) -> ChatMessage:
    return ChatMessage(role="user", content=text)


def subject(log: JetStreamEventStore, *parts: str) -> str:
    return ".".join([log.test_prefix, *parts])  # type: ignore[attr-defined]


async def test_a_projector_killed_midway_applies_every_event_exactly_once(
    event_log: JetStreamEventStore, ledger_db: tuple[str, Engine]
) -> None:
    url, engine = ledger_db
    where = subject(event_log, "k", "*")
    total = 400
    await event_log.append_many([NewEvent(subject(event_log, "k", str(i % 7)), event(f"e{i}")) for i in range(total)])
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


async def test_an_append_whose_acknowledgement_never_comes_times_out(fresh_nats: NatsServer) -> None:
    """nats-py never fails a publish whose answer is lost; a frozen server must not hang the caller."""
    log = await JetStreamEventStore.connect(fresh_nats.url, stream="FROZEN")
    await log.ensure_stream(StreamSettings(subjects=["frozen.>"]))
    log.ack_timeout = 0.5
    assert fresh_nats.process is not None
    freeze(fresh_nats.process.pid)
    try:
        with pytest.raises(AppendTimeout):
            await log.append_many([NewEvent("frozen.a", event("lost"), msg_id="lost-1")])
        with pytest.raises(AppendTimeout):
            await log.append(NewEvent("frozen.a", event("lost"), msg_id="lost-1"))
    finally:
        fresh_nats.process.send_signal(signal.SIGCONT)
    # The retry with the same id after the server is back stores the event once.
    log.ack_timeout = 10
    await log.append(NewEvent("frozen.a", event("lost"), msg_id="lost-1"))
    assert [e.event.content for e in await log.read("frozen.a")] == ["lost"]
    await log.close()


async def test_a_message_no_module_can_decode_is_parked_not_fatal(
    event_log: JetStreamEventStore, ledger_db: tuple[str, Engine]
) -> None:
    """A newer service may append types an older projector has never imported (rolling deploy):
    the projector parks it, moves on, and applies it once a retry finds it decodable."""
    _, engine = ledger_db
    where = subject(event_log, "u", ">")
    await event_log.append(NewEvent(subject(event_log, "u", "1"), event("before")))
    await event_log.js.publish(
        subject(event_log, "u", "1"), b"\x0a\x01x", headers={"Wb-Event-Type": "workbench.future.v9.Unheard"}
    )
    last = await event_log.append(NewEvent(subject(event_log, "u", "1"), event("after")))
    runner = ProjectionRunner(event_log, engine, Ledger([where]))

    assert await runner.catch_up() == last
    assert [content for _, _, content in rows(engine)] == ["before", "after"]
    (parked,) = runner.parked_events()
    assert parked.sequence == last - 1 and parked.type_name == "workbench.future.v9.Unheard"
    assert "workbench.future.v9.Unheard" in parked.error
    assert runner.status().parked == 1
    assert (await runner.retry_parked()).still_parked == 1  # still unknown to this process
