"""The worker's loop and the work queue against a real nats-server, with a stand-in engine.

Stories: a shard that takes longer than AckWait stays with the worker that works on it; a worker
stopped mid-shard hands the shard back once its drain time is up; a consumer
made with other settings takes the new ones; an append the server did not confirm in time hands the
shard back for a retry (the run still completes, each result once); publishing shards to a server
that went away fails as Unavailable instead of hanging StartRun.
"""

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Sequence

import nats
import pytest

from devstack.natsserver import NatsServer
from eventlog import AppendTimeout, JetStreamEventStore, NewEvent, PendingAppend
from inference_service.adapters.datasets_client import DatasetRecord
from inference_service.adapters.engine import Engine, EngineFacts, EngineOptions, Generation, Prompt
from inference_service.adapters.run_log import RunLog
from inference_service.adapters.work_queue import WORK_STREAM, WorkQueue, consumer_name
from inference_service.domain.errors import Unavailable
from inference_service.domain.models import ModelSpec, Sampling
from inference_service.worker.engines import EngineCache
from inference_service.worker.loop import Worker
from inference_service.worker.progress import ProgressBoard
from inference_service.worker.shard import ShardJob
from tests.integration.inference.stack import results_of
from tests.integration.inference.test_shard_job import GivenRecords, requested_run
from workbench.inference.v1 import inference_pb2 as pb

SPEC = ModelSpec("tiny-a", "Tiny A", "vllm", "/models/tiny-a", "local", 512)


class SlowEngine:
    """Takes `seconds` per prompt and counts the prompts it was given."""

    name = "slow stand-in"
    facts = EngineFacts("slow stand-in", "local")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.prompts: Counter[str] = Counter()
        self.generating = asyncio.Event()

    async def generate(self, prompt: Prompt, sampling: Sampling, request_id: str, json_schema: str = "") -> Generation:
        self.prompts[prompt.text or ""] += 1
        self.generating.set()
        await asyncio.sleep(self.seconds)
        return Generation(f"echo {prompt.text}", "stop", prompt_tokens=1, output_tokens=1)

    async def abort(self, request_ids: Sequence[str]) -> None:
        pass

    async def shutdown(self) -> None:
        pass


class UnconfirmedOnce(RunLog):
    """The event log as it is when nats-server restarts: the first result's acknowledgement never comes."""

    def __init__(self, stream_log: JetStreamEventStore) -> None:
        super().__init__(stream_log)
        self.timeouts = 0

    async def start_append(self, new: NewEvent) -> PendingAppend:
        pending = await super().start_append(new)
        if self.timeouts > 0:
            return pending
        self.timeouts += 1
        return NeverAcknowledged(new)


class NeverAcknowledged:
    """An append whose acknowledgement was lost: confirm() times out."""

    def __init__(self, new: NewEvent) -> None:
        self.new = new

    async def confirm(self) -> int:
        raise AppendTimeout(self.new.subject, 30)


async def queued_worker(
    stream_log: JetStreamEventStore,
    runs: RunLog,
    engine: Engine,
    records: list[DatasetRecord],
    ack_wait_s: float,
    drain_s: float = 5.0,
) -> Worker:
    """A worker (two shard slots) of tiny-a, and one shard of run_1 queued for it."""

    async def load(spec: ModelSpec, options: EngineOptions) -> Engine:
        return engine

    async def publish(progress: pb.RunProgress) -> None:
        pass

    engines = EngineCache({"tiny-a": SPEC}, EngineOptions(), load)
    job = ShardJob(runs, GivenRecords(records), engines, ProgressBoard(publish, runs.count_results), "w1")
    queue = WorkQueue(stream_log.nc)
    await queue.ensure_stream()
    shard = await requested_run(stream_log, len(records))
    await queue.publish([shard])
    return Worker(["tiny-a"], queue, job, engines, 2, ack_wait_s, 5, drain_s=drain_s, retry_delay_s=0.1)


async def run_worker_until_finished(
    stream_log: JetStreamEventStore, runs: RunLog, engine: Engine, records: list[DatasetRecord], ack_wait_s: float
) -> None:
    """Queues one shard of run_1, lets a worker work until run_1 has finished, stops it."""
    worker = await queued_worker(stream_log, runs, engine, records, ack_wait_s)
    stop = asyncio.Event()
    working = asyncio.create_task(worker.run(stop))
    try:
        async with asyncio.timeout(30):
            while True:
                if (await runs.load("run_1")).finished:
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(ack_wait_s)  # a redelivery, if any, would come by now
    finally:
        stop.set()
        await working


async def test_a_shard_that_takes_longer_than_ack_wait_stays_with_its_worker(stream_log: JetStreamEventStore) -> None:
    engine = SlowEngine(seconds=2.5)
    records = [DatasetRecord("r0", Prompt(text="slow"))]

    await run_worker_until_finished(stream_log, RunLog(stream_log), engine, records, ack_wait_s=1.0)

    assert engine.prompts == {"slow": 1}  # never redelivered while the first delivery still worked on it
    assert await stream_log.count("wb.results.run_1") == 1
    assert isinstance((await stream_log.read("wb.runs.run_1"))[-1].event, pb.RunCompleted)


async def test_an_append_the_server_did_not_confirm_hands_the_shard_back_and_the_run_still_completes(
    stream_log: JetStreamEventStore,
) -> None:
    runs = UnconfirmedOnce(stream_log)
    records = [DatasetRecord(f"r{n}", Prompt(text=f"p{n}")) for n in range(3)]

    await run_worker_until_finished(stream_log, runs, SlowEngine(seconds=0), records, ack_wait_s=5.0)

    assert runs.timeouts == 1
    kinds = [type(stored.event).__name__ for stored in await stream_log.read("wb.runs.run_1")]
    assert kinds == ["RunRequested", "RunStarted", "RunCompleted"]  # retried, not failed
    assert sorted(result.record_id for result in await results_of(stream_log, "run_1")) == ["r0", "r1", "r2"]


async def test_a_stopped_worker_hands_back_at_once_the_shard_it_could_not_finish_while_draining(
    stream_log: JetStreamEventStore,
) -> None:
    engine = SlowEngine(seconds=60)
    worker = await queued_worker(
        stream_log, RunLog(stream_log), engine, [DatasetRecord("r0", Prompt(text="slow"))], ack_wait_s=60, drain_s=0.5
    )
    stop = asyncio.Event()
    working = asyncio.create_task(worker.run(stop))
    await asyncio.wait_for(engine.generating.wait(), 10)  # the shard is in flight

    stop.set()
    async with asyncio.timeout(3):  # drain_s, not the engine's 60 s
        await working

    # The next worker gets the shard now, not after AckWait (60 s), and nothing was recorded for it.
    another = await stream_log.js.pull_subscribe_bind(consumer_name("tiny-a"), stream=WORK_STREAM)
    (msg,) = await another.fetch(1, timeout=5)
    assert (pb.RunShard.FromString(msg.data).run_id, msg.metadata.num_delivered) == ("run_1", 2)
    await another.unsubscribe()
    assert await stream_log.count("wb.results.run_1") == 0


async def test_a_consumer_made_with_other_settings_takes_the_new_ack_wait_and_max_deliver(
    stream_log: JetStreamEventStore,
) -> None:
    queue = WorkQueue(stream_log.nc)
    await queue.ensure_stream()
    first = await queue.subscribe("tiny-a", ack_wait_s=60, max_deliver=5)
    await first.unsubscribe()

    second = await queue.subscribe("tiny-a", ack_wait_s=4, max_deliver=3)
    await second.unsubscribe()

    config = (await stream_log.js.consumer_info(WORK_STREAM, consumer_name("tiny-a"))).config
    assert (config.ack_wait, config.max_deliver) == (4, 3)
    assert config.filter_subject == "wb.work.tiny-a"


async def test_shards_a_vanished_server_never_confirms_fail_as_unavailable_instead_of_hanging(
    fresh_nats: NatsServer,
) -> None:
    nc = await nats.connect(fresh_nats.url, max_reconnect_attempts=-1)
    try:
        queue = WorkQueue(nc, publish_timeout_s=0.5)
        await queue.ensure_stream()
        fresh_nats.stop()
        shard = pb.RunShard(run_id="run_1", dataset_id="ds_1", model_id="tiny-a", offset=0, limit=4, run_total=4)

        with pytest.raises(Unavailable, match=r"did not confirm 1 shards within 0\.5 s"):
            await asyncio.wait_for(queue.publish([shard]), 10)
    finally:
        await nc.close()


class RecordsAwayAtFirst(GivenRecords):
    """The datasets service as it is when it is down: the first `away` reads fail."""

    def __init__(self, records: list[DatasetRecord], away: int) -> None:
        super().__init__(records)
        self.away = away

    async def read_records(self, dataset_id: str, offset: int, limit: int) -> AsyncIterator[DatasetRecord]:
        if self.away > 0:
            self.away -= 1
            raise Unavailable("the datasets service is unavailable")
        async for record in super().read_records(dataset_id, offset, limit):
            yield record


async def test_a_shard_out_of_deliveries_ends_its_run_with_each_record_failed_and_why(
    stream_log: JetStreamEventStore,
) -> None:
    runs = RunLog(stream_log)
    records = [DatasetRecord(f"r{n}", Prompt(text=f"p{n}")) for n in range(3)]
    worker = await queued_worker(stream_log, runs, SlowEngine(seconds=0), records, ack_wait_s=5.0)
    worker.max_deliver = 2
    worker.job.records = RecordsAwayAtFirst(records, away=2)  # both deliveries fail

    stop = asyncio.Event()
    working = asyncio.create_task(worker.run(stop))
    try:
        async with asyncio.timeout(20):
            while True:
                if (await runs.load("run_1")).finished:
                    break
                await asyncio.sleep(0.1)
    finally:
        stop.set()
        await working

    errors = [result.error for result in await results_of(stream_log, "run_1")]
    assert errors == 3 * [
        "given up after 2 attempts (WB_WORKER_MAX_DELIVER); last error: the datasets service is unavailable"
    ]
    failed = (await stream_log.read("wb.runs.run_1"))[-1].event
    assert isinstance(failed, pb.RunFailed) and failed.error == "all 3 records failed; each result says why"


async def test_a_shard_whose_worker_died_on_its_last_attempt_comes_back_once_to_be_given_up(
    stream_log: JetStreamEventStore,
) -> None:
    runs = RunLog(stream_log)
    records = [DatasetRecord(f"r{n}", Prompt(text=f"p{n}")) for n in range(2)]
    engine = SlowEngine(seconds=0)
    worker = await queued_worker(stream_log, runs, engine, records, ack_wait_s=1.0)
    worker.max_deliver = 2
    # Two workers took the shard and died before settling it (fetched, never acknowledged).
    dying = await worker.queue.subscribe("tiny-a", ack_wait_s=1.0, max_deliver=2 + 2)
    for delivery in (1, 2):
        (msg,) = await dying.fetch(1, timeout=5)
        assert msg.metadata.num_delivered == delivery
        await asyncio.sleep(1.2)  # AckWait passes
    await dying.unsubscribe()

    stop = asyncio.Event()
    working = asyncio.create_task(worker.run(stop))
    try:
        async with asyncio.timeout(20):
            while True:
                if (await runs.load("run_1")).finished:
                    break
                await asyncio.sleep(0.1)
    finally:
        stop.set()
        await working

    assert engine.prompts == {}  # given up, not tried a third time
    assert {result.error for result in await results_of(stream_log, "run_1")} == {
        "given up after 2 attempts (WB_WORKER_MAX_DELIVER); the worker of the last one stopped before it finished"
    }
