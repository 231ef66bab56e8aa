"""A worker's shard job against a real event log, with a stand-in engine behind our own engine port.

Stories: all prompts of a shard reach the engine at once; a bad record is recorded as an error and
the run still completes; an engine that dies is dropped and the shard retried; a model that cannot
load fails the run.
"""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from devstack.natsserver import NatsServer
from eventlog import JetStreamEventStore
from inference_service.adapters.datasets_client import DatasetRecord
from inference_service.adapters.engine import (
    Engine,
    EngineLoadError,
    EngineOptions,
    EngineUnavailable,
    Generation,
    Prompt,
    RecordFailed,
)
from inference_service.adapters.run_log import RunLog
from inference_service.domain.commands import RequestRun
from inference_service.domain.models import ModelSpec, Sampling
from inference_service.domain.state import RunState, decide
from inference_service.worker.engines import EngineCache
from inference_service.worker.progress import ProgressBoard
from inference_service.worker.shard import Outcome, ShardJob
from tests.integration.inference.stack import results_of
from workbench.inference.v1 import inference_pb2 as pb

SPEC = ModelSpec("tiny-a", "Tiny A", "vllm", "/models/tiny-a", "local", 512)


class StandInEngine:
    """Answers only once `expected` prompts are waiting, so one-at-a-time submission would hang."""

    name = "stand-in 1.0"

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.waiting = 0
        self.all_there = asyncio.Event()
        self.dead = False

    async def generate(self, prompt: Prompt, sampling: Sampling, request_id: str) -> Generation:
        self.waiting += 1
        if self.waiting >= self.expected:
            self.all_there.set()
        await asyncio.wait_for(self.all_there.wait(), 5)
        if self.dead:
            raise EngineUnavailable("the engine process died")
        if prompt.text == "bad":
            raise RecordFailed("prompt is longer than the model's maximum context length")
        text = prompt.text or " / ".join(content for _, content in prompt.messages)
        return Generation(f"echo {text}", "stop", prompt_tokens=3, output_tokens=2)

    async def shutdown(self) -> None:
        pass


class GivenRecords:
    def __init__(self, records: list[DatasetRecord]) -> None:
        self.records = records

    async def read_records(self, dataset_id: str, offset: int, limit: int) -> AsyncIterator[DatasetRecord]:
        for record in self.records[offset : offset + limit]:
            yield record


@pytest.fixture
async def events(fresh_nats: NatsServer) -> AsyncIterator[JetStreamEventStore]:
    log = await JetStreamEventStore.connect(fresh_nats.url)
    await log.ensure_stream()
    yield log
    await log.close()


def records(*prompts: str) -> list[DatasetRecord]:
    return [DatasetRecord(f"r{n}", Prompt(text=text)) for n, text in enumerate(prompts)]


async def job_for(
    events: JetStreamEventStore, engine: Engine | Exception, given: list[DatasetRecord]
) -> tuple[ShardJob, list[ModelSpec]]:
    loads: list[ModelSpec] = []

    async def load(spec: ModelSpec, options: EngineOptions) -> Engine:
        loads.append(spec)
        if isinstance(engine, Exception):
            raise engine
        return engine

    async def publish(progress: pb.RunProgress) -> None:
        pass

    runs = RunLog(events)
    board = ProgressBoard(publish, runs.count_results)
    return ShardJob(runs, GivenRecords(given), EngineCache({"tiny-a": SPEC}, EngineOptions(), load), board, "w1"), loads


async def requested_run(events: JetStreamEventStore, total: int) -> pb.RunShard:
    command = RequestRun("run_1", "ds_1", "tiny-a", Sampling(max_tokens=8), total, datetime.now(UTC))
    await RunLog(events).append(decide(RunState("run_1"), command))
    return pb.RunShard(run_id="run_1", dataset_id="ds_1", model_id="tiny-a", offset=0, limit=total, run_total=total)


async def test_every_prompt_of_a_shard_goes_to_the_engine_at_once_and_a_bad_one_is_recorded_as_an_error(
    events: JetStreamEventStore,
) -> None:
    given = records("hello", "bad", "tell me", "more")
    job, _ = await job_for(events, StandInEngine(expected=4), given)
    shard = await requested_run(events, 4)

    assert await job.process(shard, redelivered=False) is Outcome.ACK

    results = {result.record_id: result for result in await results_of(events, "run_1")}
    assert sorted(results) == ["r0", "r1", "r2", "r3"]
    assert results["r0"].output_text == "echo hello" and results["r0"].output_tokens == 2
    assert results["r1"].error.startswith("prompt is longer") and results["r1"].output_text == ""
    _, started, completed = [stored.event for stored in await events.read("wb.runs.run_1")]
    assert isinstance(started, pb.RunStarted) and isinstance(completed, pb.RunCompleted)
    assert started.engine == "stand-in 1.0" and (completed.done, completed.failed) == (4, 1)


async def test_an_engine_that_dies_is_dropped_and_the_shard_left_for_a_retry(events: JetStreamEventStore) -> None:
    engine = StandInEngine(expected=2)
    engine.dead = True
    job, loads = await job_for(events, engine, records("a", "b"))
    shard = await requested_run(events, 2)

    with pytest.raises(EngineUnavailable):
        await job.process(shard, redelivered=False)

    assert await events.count("wb.results.run_1") == 0
    engine.dead = False
    engine.waiting = 0
    assert await job.process(shard, redelivered=True) is Outcome.ACK
    assert len(loads) == 2  # loaded again after the failure
    assert await events.count("wb.results.run_1") == 2


async def test_a_model_that_cannot_load_fails_the_run_and_the_shard_is_terminated(events: JetStreamEventStore) -> None:
    job, _ = await job_for(events, EngineLoadError("model tiny-a could not be loaded from /models/tiny-a: no"), [])
    shard = await requested_run(events, 2)

    assert await job.process(shard, redelivered=False) is Outcome.TERM

    (_, failed) = [stored.event for stored in await events.read("wb.runs.run_1")]
    assert isinstance(failed, pb.RunFailed)
    assert failed.error == "model tiny-a could not be loaded from /models/tiny-a: no"
    assert await job.process(shard, redelivered=True) is Outcome.ACK  # a failed run has nothing left to do


async def test_record_ids_that_differ_only_in_whitespace_each_get_a_result_and_the_run_completes(
    events: JetStreamEventStore,
) -> None:
    given = [
        DatasetRecord(record_id, Prompt(text=f"about {record_id!r}")) for record_id in ("q1", "q1 ", "a\nb", "a b")
    ]
    job, _ = await job_for(events, StandInEngine(expected=4), given)
    shard = await requested_run(events, 4)

    assert await job.process(shard, redelivered=False) is Outcome.ACK

    assert sorted(result.record_id for result in await results_of(events, "run_1")) == ["a\nb", "a b", "q1", "q1 "]
    assert isinstance((await events.read("wb.runs.run_1"))[-1].event, pb.RunCompleted)
