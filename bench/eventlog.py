"""Event-log benchmark: the library's cost over bare nats-py, measured in one run on one server.

    python bench/eventlog.py [--events 100000]

Appends N small events through libs/eventlog (JetStreamEventStore.append_many: publish_async,
many in flight, with dedup ids and type headers) and through bare js.publish_async; rebuilds a
SQLModel projection from them (ProjectionRunner.rebuild into SQLite) and reads them with a bare
ordered consumer. The last two lines are the ratios (1.0 = as fast as bare nats-py):
    append_vs_raw_publish: X      (aim >= 0.7)
    rebuild_vs_raw_read: Y        (aim >= 0.3)

Where the append's time goes (cProfile and process_time over 30,000-50,000 appends, 2 cores shared
by client and server): the client is the bottleneck (its CPU time is the wall time). The library's
own code is under a tenth of the append's time; the rest is nats-py. Two costs were the library's and
are gone: a wait_for per event in append_many (a timer and a task each, a sixth of the time: it now
waits once per batch), and nats-py's stream= check, a third header per event (now not sent: the
wb.* subjects belong to the stream by configuration). What is left is the price of the contract:
nats-py builds and checks the two headers of every event (Wb-Event-Type, Nats-Msg-Id: a regex and
a translate each; bare publish_async with the same two headers runs at about 0.85 of bare without)
and the server looks each Nats-Msg-Id up in its duplicate window. Measured before: 0.50-0.80 from
run to run, the paths timed one after the other; now the paths alternate chunk by chunk, so both
see the same load: 0.73-0.77 in six runs here.
"""

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

# This file is named like the library it measures; keep its folder from shadowing the package.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from sqlalchemy import insert  # noqa: E402
from sqlmodel import Field, Session, SQLModel, delete  # noqa: E402

from devstack.natsserver import NatsServer  # noqa: E402
from eventlog import JetStreamEventStore, NewEvent, ProjectionRunner, StoredEvent, StreamSettings  # noqa: E402
from servicehost.database import create_engine  # noqa: E402
from workbench.inference.v1.inference_pb2 import ResultRecorded  # noqa: E402


class BenchResult(SQLModel, table=True):
    __tablename__ = "bench_results"

    sequence: int = Field(primary_key=True)
    run_id: str
    record_id: str
    output_tokens: int


class ResultsProjection:
    name = "bench-results"
    tables = (BenchResult,)

    def __init__(self, subjects: Sequence[str]) -> None:
        self.subjects = subjects

    def apply(self, session: Session, event: StoredEvent) -> None:
        result = event.event
        assert isinstance(result, ResultRecorded)
        session.add(
            BenchResult(
                sequence=event.sequence,
                run_id=result.run_id,
                record_id=result.record_id,
                output_tokens=result.output_tokens,
            )
        )

    def apply_many(self, session: Session, events: Sequence[StoredEvent]) -> None:
        # One multi-row INSERT per batch: what a results projection does on a rebuild.
        rows = [
            {
                "sequence": e.sequence,
                "run_id": e.event.run_id,  # type: ignore[attr-defined]
                "record_id": e.event.record_id,  # type: ignore[attr-defined]
                "output_tokens": e.event.output_tokens,  # type: ignore[attr-defined]
            }
            for e in events
        ]
        session.execute(insert(BenchResult), rows)

    def clear(self, session: Session) -> None:
        session.exec(delete(BenchResult))  # type: ignore[call-overload]


CHUNK = 5000  # events per append_many, as a worker's shard appends them


def result(i: int) -> ResultRecorded:
    return ResultRecorded(
        run_id="run_bench",
        dataset_id="ds_bench",
        model_id="tiny",
        record_id=f"r{i}",
        output_text=f"answer number {i}",
        finish_reason="length",
        output_tokens=8,
    )


async def timed(label: str, n: int, work: "asyncio.Future[object] | object") -> float:
    start = time.perf_counter()
    await work  # type: ignore[misc]
    seconds = time.perf_counter() - start
    print(f"{label}: {n / seconds:,.0f} events/s ({seconds:.2f} s)")
    return n / seconds


async def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = NatsServer(Path(tmp) / "nats").start()
        try:
            await run(server.url, n, Path(tmp))
        finally:
            server.stop()


async def run(url: str, n: int, tmp: Path) -> None:
    lib = await JetStreamEventStore.connect(url, stream="BENCH_LIB")
    await lib.ensure_stream(StreamSettings(subjects=["lib.>"]))
    raw = await JetStreamEventStore.connect(url, stream="BENCH_RAW")
    await raw.ensure_stream(StreamSettings(subjects=["raw.>"]))
    payloads = [result(i) for i in range(n)]

    async def lib_append(chunk: list[ResultRecorded]) -> None:
        await lib.append_many(
            NewEvent("lib.results.run_bench", e, msg_id=f"result:run_bench:{e.record_id}") for e in chunk
        )

    async def raw_publish(chunk: list[ResultRecorded]) -> None:
        futures = [await raw.js.publish_async("raw.results.run_bench", e.SerializeToString()) for e in chunk]
        await asyncio.gather(*futures)

    # Warm both paths so neither pays the connection's first-use costs inside the timing.
    await lib.append(NewEvent("lib.warm", result(-1)))
    await raw.js.publish("raw.warm", b"")
    # Interleaved chunks, each path first in turn: both run under the same load (the server's
    # growing streams, garbage collection, whatever else the machine does meanwhile).
    seconds = {"raw": 0.0, "lib": 0.0}
    for round_, start in enumerate(range(0, n, CHUNK)):
        chunk = payloads[start : start + CHUNK]
        order = [("raw", raw_publish), ("lib", lib_append)]
        for name, append in order if round_ % 2 == 0 else reversed(order):
            began = time.perf_counter()
            await append(chunk)
            seconds[name] += time.perf_counter() - began
    raw_rate, lib_rate = n / seconds["raw"], n / seconds["lib"]
    print(f"raw publish_async: {raw_rate:,.0f} events/s ({seconds['raw']:.2f} s)")
    print(f"eventlog append_many: {lib_rate:,.0f} events/s ({seconds['lib']:.2f} s)")

    async def raw_read() -> None:
        # Bare nats-py: an ordered push consumer from the first message, no decoding.
        sub = await raw.js.subscribe("raw.results.>", ordered_consumer=True, pending_msgs_limit=n + 10)
        count = 0
        while count < n:
            await sub.next_msg(timeout=30)
            count += 1
        await sub.unsubscribe()

    engine = create_engine(f"sqlite:///{tmp / 'bench.db'}")
    runner = ProjectionRunner(lib, engine, ResultsProjection(["lib.results.>"]), batch_size=2000)

    async def rebuild() -> None:
        await runner.rebuild()

    read_rate = await timed("raw ordered-consumer read", n, raw_read())
    rebuild_rate = await timed("projection rebuild (SQLite)", n, rebuild())
    with Session(engine) as session:
        stored = session.exec(BenchResult.__table__.select()).all()  # type: ignore[attr-defined, call-overload]
    assert len(stored) == n, f"the rebuild stored {len(stored)} rows, expected {n}"

    await lib.close()
    await raw.close()
    print(f"append_vs_raw_publish: {lib_rate / raw_rate:.2f}")
    print(f"rebuild_vs_raw_read: {rebuild_rate / read_rate:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    asyncio.run(main(parser.parse_args().events))
    sys.exit(0)
