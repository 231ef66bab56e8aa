"""A worker's shard job against a real event log, with a stand-in engine behind our own engine port.

Stories: all prompts of a shard reach the engine at once; a bad record is recorded as an error and
the run still completes; a record that kills the engine is found by halving and fails alone; an
engine that dies whatever it is given leaves the shard for a retry; a cancelled run stops its
shard; a hanging generation times out; a shard out of deliveries ends its run; a model that cannot
load fails the run.
"""

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import nats
import pytest

from eventlog import AppendTimeout, JetStreamEventStore, NewEvent, PendingAppend
from inference_service.adapters.datasets_client import DatasetRecord
from inference_service.adapters.engine import (
    Engine,
    EngineFacts,
    EngineLoadError,
    EngineOptions,
    EngineUnavailable,
    Generation,
    Prompt,
    RecordFailed,
)
from inference_service.adapters.run_log import RunLog
from inference_service.domain.commands import CancelRun, RequestRun
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
    facts = EngineFacts("stand-in 1.0", "local", weights_hash="w" * 64, chat_template_hash="t" * 64)

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.waiting = 0
        self.all_there = asyncio.Event()
        self.dead = False
        self.aborted: list[str] = []

    async def abort(self, request_ids: Sequence[str]) -> None:
        self.aborted.extend(request_ids)

    async def generate(self, prompt: Prompt, sampling: Sampling, request_id: str, json_schema: str = "") -> Generation:
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


def records(*prompts: str) -> list[DatasetRecord]:
    return [DatasetRecord(f"r{n}", Prompt(text=text)) for n, text in enumerate(prompts)]


async def job_for(
    stream_log: JetStreamEventStore, engine: Engine | Exception, given: list[DatasetRecord]
) -> tuple[ShardJob, list[ModelSpec]]:
    loads: list[ModelSpec] = []

    async def load(spec: ModelSpec, options: EngineOptions) -> Engine:
        loads.append(spec)
        if isinstance(engine, Exception):
            raise engine
        return engine

    async def publish(progress: pb.RunProgress) -> None:
        pass

    runs = RunLog(stream_log)
    board = ProgressBoard(publish, runs.count_results)
    return ShardJob(runs, GivenRecords(given), EngineCache({"tiny-a": SPEC}, EngineOptions(), load), board, "w1"), loads


async def requested_run(stream_log: JetStreamEventStore, total: int) -> pb.RunShard:
    command = RequestRun("run_1", "ds_1", "tiny-a", Sampling(max_tokens=8), total, datetime.now(UTC))
    await RunLog(stream_log).append(decide(RunState("run_1"), command))
    return pb.RunShard(run_id="run_1", dataset_id="ds_1", model_id="tiny-a", offset=0, limit=total, run_total=total)


async def test_every_prompt_of_a_shard_goes_to_the_engine_at_once_and_a_bad_one_is_recorded_as_an_error(
    stream_log: JetStreamEventStore,
) -> None:
    given = records("hello", "bad", "tell me", "more")
    job, _ = await job_for(stream_log, StandInEngine(expected=4), given)
    shard = await requested_run(stream_log, 4)

    assert await job.process(shard, redelivered=False) is Outcome.ACK

    results = {result.record_id: result for result in await results_of(stream_log, "run_1")}
    assert sorted(results) == ["r0", "r1", "r2", "r3"]
    assert results["r0"].output_text == "echo hello" and results["r0"].output_tokens == 2
    assert results["r1"].error.startswith("prompt is longer") and results["r1"].output_text == ""
    _, started, completed = [stored.event for stored in await stream_log.read("wb.runs.run_1")]
    assert isinstance(started, pb.RunStarted) and isinstance(completed, pb.RunCompleted)
    assert started.engine == "stand-in 1.0" and (completed.done, completed.failed) == (4, 1)


class PoisonableEngine:
    """Dies, taking every generation in flight with it, as soon as it is given the prompt "p";
    answers the others after a moment (so several are in flight together)."""

    name = "poisonable 1.0"
    facts = EngineFacts("poisonable 1.0", "local")

    def __init__(self, always_dies: bool = False) -> None:
        self.always_dies = always_dies
        self.died = asyncio.Event()
        self.prompts: list[str] = []

    async def generate(self, prompt: Prompt, sampling: Sampling, request_id: str, json_schema: str = "") -> Generation:
        self.prompts.append(prompt.text or "")
        if prompt.text == "p" or self.always_dies:
            self.died.set()
        try:
            await asyncio.wait_for(self.died.wait(), 0.05)
        except TimeoutError:
            return Generation(f"echo {prompt.text}", "stop", prompt_tokens=3, output_tokens=2)
        raise EngineUnavailable("the engine process died")

    async def abort(self, request_ids: Sequence[str]) -> None:
        pass

    async def shutdown(self) -> None:
        pass


def poisonable_job(stream_log: JetStreamEventStore, given: list[DatasetRecord], always_dies: bool = False) -> ShardJob:
    engines: list[PoisonableEngine] = []

    async def load(spec: ModelSpec, options: EngineOptions) -> Engine:
        engines.append(PoisonableEngine(always_dies))
        return engines[-1]

    async def publish(progress: pb.RunProgress) -> None:
        pass

    runs = RunLog(stream_log)
    cache = EngineCache({"tiny-a": SPEC}, EngineOptions(), load)
    return ShardJob(runs, GivenRecords(given), cache, ProgressBoard(publish, runs.count_results), "w1")


async def test_the_record_that_kills_the_engine_is_found_by_halving_and_fails_alone(
    stream_log: JetStreamEventStore,
) -> None:
    prompts = [f"story {n}" for n in range(16)]
    prompts[11] = "p"
    job = poisonable_job(stream_log, records(*prompts))
    shard = await requested_run(stream_log, 16)

    assert await job.process(shard, redelivered=False) is Outcome.ACK

    results = {result.record_id: result for result in await results_of(stream_log, "run_1")}
    assert sorted(results) == sorted(f"r{n}" for n in range(16))
    failed = {record_id: result.error for record_id, result in results.items() if result.error}
    assert list(failed) == ["r11"] and "the engine died on this record, alone" in failed["r11"]
    assert all(results[f"r{n}"].output_text == f"echo story {n}" for n in range(16) if n != 11)
    completed = (await stream_log.read("wb.runs.run_1"))[-1].event
    assert isinstance(completed, pb.RunCompleted) and (completed.done, completed.failed) == (16, 1)


async def test_an_engine_that_dies_whatever_it_is_given_leaves_the_shard_for_a_retry(
    stream_log: JetStreamEventStore,
) -> None:
    job = poisonable_job(stream_log, records(*(f"story {n}" for n in range(8))), always_dies=True)
    shard = await requested_run(stream_log, 8)

    with pytest.raises(EngineUnavailable, match="keeps dying"):
        await job.process(shard, redelivered=False)

    # Halving 8 records blames at most one per level; an engine that dies on all of them is not
    # taken for 8 bad records, and the shard goes back to the queue.
    assert await stream_log.count("wb.results.run_1") < 8
    assert isinstance((await stream_log.read("wb.runs.run_1"))[-1].event, pb.RunStarted)


class SlowEngine:
    """Answers "quick" prompts at once and holds the others until aborted or cancelled."""

    name = "slow 1.0"
    facts = EngineFacts("slow 1.0", "local")

    def __init__(self) -> None:
        self.aborted: list[str] = []
        self.holding = 0

    async def generate(self, prompt: Prompt, sampling: Sampling, request_id: str, json_schema: str = "") -> Generation:
        if prompt.text == "quick":
            return Generation("fast answer", "stop", prompt_tokens=1, output_tokens=2)
        self.holding += 1
        await asyncio.Event().wait()
        raise AssertionError("never answers")

    async def abort(self, request_ids: Sequence[str]) -> None:
        self.aborted.extend(request_ids)

    async def shutdown(self) -> None:
        pass


async def test_cancelling_a_run_stops_its_shard_aborts_what_is_in_flight_and_keeps_what_was_recorded(
    stream_log: JetStreamEventStore,
) -> None:
    engine = SlowEngine()
    job, _ = await job_for(stream_log, engine, records("quick", "slow", "slow", "quick"))  # type: ignore[arg-type]
    job.cancel_poll_s = 0.05
    shard = await requested_run(stream_log, 4)

    processing = asyncio.create_task(job.process(shard, redelivered=False))
    while True:
        if engine.holding == 2:
            break
        await asyncio.sleep(0.01)
    run = await RunLog(stream_log).load("run_1")
    await RunLog(stream_log).append(decide(run, CancelRun("run_1", datetime.now(UTC))))

    assert await asyncio.wait_for(processing, 5) is Outcome.ACK
    assert sorted(result.record_id for result in await results_of(stream_log, "run_1")) == ["r0", "r3"]
    assert len(engine.aborted) == 4 and all(request_id.startswith("run_1/") for request_id in engine.aborted)
    assert (await RunLog(stream_log).load("run_1")).status == "cancelled"
    assert await job.process(shard, redelivered=True) is Outcome.ACK  # the shard redelivered: nothing to do


async def test_a_generation_that_hangs_is_aborted_after_the_timeout_and_recorded_as_failed(
    stream_log: JetStreamEventStore,
) -> None:
    engine = SlowEngine()
    job, _ = await job_for(stream_log, engine, records("quick", "slow"))  # type: ignore[arg-type]
    job.generation_timeout_s = 0.2
    shard = await requested_run(stream_log, 2)

    assert await job.process(shard, redelivered=False) is Outcome.ACK

    results = {result.record_id: result for result in await results_of(stream_log, "run_1")}
    assert results["r0"].output_text == "fast answer" and not results["r0"].error
    assert results["r1"].error.startswith("no answer within 0.2 s") and results["r1"].finish_reason == "error"
    assert len(engine.aborted) == 1 and engine.aborted[0].startswith("run_1/r1/")
    completed = (await stream_log.read("wb.runs.run_1"))[-1].event
    assert isinstance(completed, pb.RunCompleted) and (completed.done, completed.failed) == (2, 1)


async def test_a_shard_out_of_deliveries_records_its_unfinished_records_as_failed_and_the_run_ends(
    stream_log: JetStreamEventStore,
) -> None:
    job, _ = await job_for(stream_log, StandInEngine(expected=1), records("a", "b", "c", "d"))
    first = await requested_run(stream_log, 4)
    first.limit = 2
    assert await job.process(first, redelivered=False) is Outcome.ACK  # records r0 and r1
    second = pb.RunShard()
    second.CopyFrom(first)
    second.offset = 2

    await job.give_up(second, "given up after 5 attempts; last error: datasets service unavailable")

    results = {result.record_id: result for result in await results_of(stream_log, "run_1")}
    assert [results[f"r{n}"].error for n in range(4)] == ["", ""] + 2 * [
        "given up after 5 attempts; last error: datasets service unavailable"
    ]
    completed = (await stream_log.read("wb.runs.run_1"))[-1].event
    assert isinstance(completed, pb.RunCompleted) and (completed.done, completed.failed) == (4, 2)


async def test_a_run_where_no_record_could_run_ends_failed(stream_log: JetStreamEventStore) -> None:
    job, _ = await job_for(stream_log, StandInEngine(expected=1), records("a", "b"))
    shard = await requested_run(stream_log, 2)

    await job.give_up(shard, "given up after 5 attempts; last error: the log did not confirm")

    failed = (await stream_log.read("wb.runs.run_1"))[-1].event
    assert isinstance(failed, pb.RunFailed) and failed.error == "all 2 records failed; each result says why"


async def test_a_model_that_cannot_load_fails_the_run_and_the_shard_is_terminated(
    stream_log: JetStreamEventStore,
) -> None:
    job, _ = await job_for(stream_log, EngineLoadError("model tiny-a could not be loaded from /models/tiny-a: no"), [])
    shard = await requested_run(stream_log, 2)

    assert await job.process(shard, redelivered=False) is Outcome.TERM

    (_, failed) = [stored.event for stored in await stream_log.read("wb.runs.run_1")]
    assert isinstance(failed, pb.RunFailed)
    assert failed.error == "model tiny-a could not be loaded from /models/tiny-a: no"
    assert await job.process(shard, redelivered=True) is Outcome.ACK  # a failed run has nothing left to do


async def test_record_ids_that_differ_only_in_whitespace_each_get_a_result_and_the_run_completes(
    stream_log: JetStreamEventStore,
) -> None:
    given = [
        DatasetRecord(record_id, Prompt(text=f"about {record_id!r}")) for record_id in ("q1", "q1 ", "a\nb", "a b")
    ]
    job, _ = await job_for(stream_log, StandInEngine(expected=4), given)
    shard = await requested_run(stream_log, 4)

    assert await job.process(shard, redelivered=False) is Outcome.ACK

    assert sorted(result.record_id for result in await results_of(stream_log, "run_1")) == ["a\nb", "a b", "q1", "q1 "]
    assert isinstance((await stream_log.read("wb.runs.run_1"))[-1].event, pb.RunCompleted)


class LostAcks(JetStreamEventStore):
    """The real log, except that results are never acknowledged (the nats-server that had them was
    killed) and, when asked, the publish of record r0's result fails outright (the client
    reconnecting with its outbound buffer full): what a worker sees when nats-server dies under it."""

    def __init__(self, stream_log: JetStreamEventStore, ack_timeout_s: float, r0_fails: bool) -> None:
        super().__init__(stream_log.nc)
        self.ack_timeout_s = ack_timeout_s
        self.r0_fails = r0_fails
        self.started: list[str] = []
        self.waited: list[str] = []

    async def start_append(self, new: NewEvent) -> PendingAppend:  # type: ignore[override]  # the port's type
        if not new.subject.startswith("wb.results."):
            return await super().start_append(new)
        record_id = getattr(new.event, "record_id", "")
        if self.r0_fails and record_id == "r0":
            raise nats.errors.OutboundBufferLimitError
        self.started.append(record_id)
        return Unacknowledged(new, record_id, self)


@dataclass
class Unacknowledged:
    new: NewEvent
    record_id: str
    store: LostAcks

    async def confirm(self) -> int:
        self.store.waited.append(self.record_id)
        await asyncio.sleep(self.store.ack_timeout_s)
        raise AppendTimeout(self.new.subject, self.store.ack_timeout_s)


@pytest.mark.parametrize("r0_fails", [True, False], ids=["a publish fails", "acks lost only"])
async def test_results_lost_with_nats_server_cost_the_shard_one_ack_timeout_and_each_is_waited_for(
    stream_log: JetStreamEventStore, r0_fails: bool
) -> None:
    lossy = LostAcks(stream_log, ack_timeout_s=1.0, r0_fails=r0_fails)
    job, _ = await job_for(lossy, StandInEngine(expected=8), records(*(f"prompt {n}" for n in range(8))))
    shard = await requested_run(stream_log, 8)

    began = time.monotonic()
    with pytest.raises((nats.errors.OutboundBufferLimitError, AppendTimeout)):
        await job.process(shard, redelivered=False)

    # Back to the queue after one ack timeout, not one per result (the shard's keep-alive holds it meanwhile),
    # and no append is left unconfirmed (the store lets go of an append's future when it is confirmed).
    assert time.monotonic() - began < 3
    assert lossy.started and sorted(lossy.waited) == sorted(lossy.started)
