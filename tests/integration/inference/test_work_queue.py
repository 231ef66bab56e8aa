"""The worker's loop and the work queue against a real nats-server, with a stand-in engine.

Stories: a shard that takes longer than AckWait stays with the worker that works on it; a consumer
made with other settings takes the new ones; an append the server did not confirm in time hands the
shard back for a retry (the run still completes, each result once); publishing shards to a server
that went away fails as Unavailable instead of hanging StartRun.
"""

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import nats
import pytest

from eventlog import AppendTimeout, EventLog
from devstack.natsserver import NatsServer
from inference_service.adapters.datasets_client import DatasetRecord
from inference_service.adapters.engine import Engine, EngineOptions, Generation, Prompt
from inference_service.adapters.run_log import PendingAppend, RunLog
from inference_service.adapters.work_queue import WORK_STREAM, WorkQueue, consumer_name
from inference_service.domain.errors import Unavailable
from inference_service.domain.models import ModelSpec, Sampling
from inference_service.engines import EngineCache
from inference_service.live_progress import ProgressBoard
from inference_service.shard import ShardJob
from inference_service.worker import Worker
from tests.integration.inference.stack import results_of
from tests.integration.inference.test_shard_job import GivenRecords, requested_run
from workbench.inference.v1 import inference_pb2 as pb

SPEC = ModelSpec("tiny-a", "Tiny A", "vllm", "/models/tiny-a", "local", 512)


class SlowEngine:
    """Takes `seconds` per prompt and counts the prompts it was given."""

    name = "slow stand-in"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.prompts: Counter[str] = Counter()

    async def generate(self, prompt: Prompt, sampling: Sampling, request_id: str) -> Generation:
        self.prompts[prompt.text or ""] += 1
        await asyncio.sleep(self.seconds)
        return Generation(f"echo {prompt.text}", "stop", prompt_tokens=1, output_tokens=1)

    async def shutdown(self) -> None:
        pass


class UnconfirmedOnce(RunLog):
    """The event log as it is when nats-server restarts: the first result's acknowledgement never comes."""

    def __init__(self, events: EventLog) -> None:
        super().__init__(events)
        self.timeouts = 0

    async def confirm(self, pending: PendingAppend) -> int:
        if self.timeouts == 0:
            self.timeouts += 1
            raise AppendTimeout(pending[0].subject, 30)
        return await super().confirm(pending)


@pytest.fixture
async def events(fresh_nats: NatsServer) -> AsyncIterator[EventLog]:
    log = await EventLog.connect(fresh_nats.url)
    await log.ensure_stream()
    yield log
    await log.close()


async def run_worker_until_finished(
    events: EventLog, runs: RunLog, engine: Engine, records: list[DatasetRecord], ack_wait_s: float
) -> None:
    """Queues one shard of run_1, lets a worker (two shard slots) work until run_1 has finished, stops it."""

    async def load(spec: ModelSpec, options: EngineOptions) -> Engine:
        return engine

    async def publish(progress: pb.RunProgress) -> None:
        pass

    engines = EngineCache({"tiny-a": SPEC}, EngineOptions(), load)
    job = ShardJob(runs, GivenRecords(records), engines, ProgressBoard(publish, runs.count_results), "w1")
    queue = WorkQueue(events.nc)
    await queue.ensure_stream()
    shard = await requested_run(events, len(records))
    await queue.publish([shard])
    worker = Worker(["tiny-a"], queue, job, engines, 2, ack_wait_s, 5, retry_delay_s=0.1)
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


async def test_a_shard_that_takes_longer_than_ack_wait_stays_with_its_worker(events: EventLog) -> None:
    engine = SlowEngine(seconds=2.5)
    records = [DatasetRecord("r0", Prompt(text="slow"))]

    await run_worker_until_finished(events, RunLog(events), engine, records, ack_wait_s=1.0)

    assert engine.prompts == {"slow": 1}  # never redelivered while the first delivery still worked on it
    assert await events.count("wb.results.run_1") == 1
    assert isinstance((await events.read("wb.runs.run_1"))[-1].event, pb.RunCompleted)


async def test_an_append_the_server_did_not_confirm_hands_the_shard_back_and_the_run_still_completes(
    events: EventLog,
) -> None:
    runs = UnconfirmedOnce(events)
    records = [DatasetRecord(f"r{n}", Prompt(text=f"p{n}")) for n in range(3)]

    await run_worker_until_finished(events, runs, SlowEngine(seconds=0), records, ack_wait_s=5.0)

    assert runs.timeouts == 1
    kinds = [type(stored.event).__name__ for stored in await events.read("wb.runs.run_1")]
    assert kinds == ["RunRequested", "RunStarted", "RunCompleted"]  # retried, not failed
    assert sorted(result.record_id for result in await results_of(events, "run_1")) == ["r0", "r1", "r2"]


async def test_a_consumer_made_with_other_settings_takes_the_new_ack_wait_and_max_deliver(events: EventLog) -> None:
    queue = WorkQueue(events.nc)
    await queue.ensure_stream()
    first = await queue.subscribe("tiny-a", ack_wait_s=60, max_deliver=5)
    await first.unsubscribe()

    second = await queue.subscribe("tiny-a", ack_wait_s=4, max_deliver=3)
    await second.unsubscribe()

    config = (await events.js.consumer_info(WORK_STREAM, consumer_name("tiny-a"))).config
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
