"""Runs end to end with a real vLLM engine: the datasets service, the inference API, a worker process.

Stories: a run over 20 records (prompts, chats and one record too long for the model) gives one
result per record, completes and records what reproduces it; a worker that dies mid-shard leaves
its shard to another, which records only what is missing; a model that cannot load fails its run
with a readable error; a run cancelled mid-way stops, keeping what it recorded; a run with a JSON
schema gets answers valid against it (vLLM's structured output on the CPU); the worker's state
shows on the model.
"""

import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import jsonschema
import pytest
from nats.aio.msg import Msg

from devstack.faults import freeze, thaw
from eventlog import JetStreamEventStore, NewEvent
from inference_service.adapters.work_queue import WORK_STREAM, consumer_name
from tests.integration.inference.stack import WorkerProcess, record_ids, results_of, upload, wait_for_run
from workbench.inference.v1 import inference_pb2 as pb

pytestmark = pytest.mark.vllm

TOO_LONG = " ".join(["water"] * 600)  # more tokens than tiny-a's max_model_len (512)


def mixed_records() -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for n in range(19):
        if n % 2:
            records.append({"id": f"r{n:02d}", "prompt": f"tell me a story about the river and the old king {n}"})
        else:
            chat = [{"role": "system", "content": "be brief"}, {"role": "user", "content": f"what is the time {n}?"}]
            records.append({"id": f"r{n:02d}", "messages": chat})
    records.append({"id": "r19-too-long", "prompt": TOO_LONG})
    return records


@contextlib.asynccontextmanager
async def progress_messages(events: JetStreamEventStore) -> AsyncIterator[list[pb.RunProgress]]:
    received: list[pb.RunProgress] = []

    async def collect(msg: Msg) -> None:
        received.append(pb.RunProgress.FromString(msg.data))

    subscription = await events.nc.subscribe("wb.progress.>", cb=collect)
    try:
        yield received
    finally:
        await subscription.unsubscribe()


async def test_a_run_gets_one_result_per_record_and_completes(
    worker: WorkerProcess, inference: Any, datasets: Any, events: JetStreamEventStore
) -> None:
    dataset = await upload(datasets, "mixed.jsonl", mixed_records())

    async with progress_messages(events) as progress:
        began = time.monotonic()
        request = pb.StartRunRequest(dataset_id=dataset.dataset_id, model_id="tiny-a")
        run_id = (await inference.StartRun(request)).run.run_id
        run = await wait_for_run(inference, run_id, worker)
        print(f"\nrun of 20 records finished in {time.monotonic() - began:.1f} s (engine start included)")
        await asyncio.sleep(0.2)  # the final progress message may trail the completion

    results = await results_of(events, run_id)
    assert sorted(result.record_id for result in results) == sorted(await record_ids(datasets, dataset.dataset_id))
    failed = [result for result in results if result.error]
    assert [result.record_id for result in failed] == ["r19-too-long"]
    assert "maximum context length" in failed[0].error
    answered = [result for result in results if not result.error]
    assert all(result.output_text and result.output_tokens > 0 and result.prompt_tokens > 0 for result in answered)
    assert all(result.finish_reason in ("length", "stop") and result.latency_ms > 0 for result in answered)

    requested, started, completed = [stored.event for stored in await events.read(f"wb.runs.{run_id}")]
    assert isinstance(requested, pb.RunRequested) and requested.record_count == 20
    assert isinstance(started, pb.RunStarted) and isinstance(completed, pb.RunCompleted)
    assert started.engine.startswith("vllm ") and started.worker == "test-worker"
    assert started.model_revision == "local"
    assert len(started.weights_hash) == 64 and len(started.chat_template_hash) == 64
    assert (completed.done, completed.failed) == (20, 1)

    assert (run.status, run.done, run.failed, run.total) == (pb.RUN_STATUS_COMPLETED, 20, 1, 20)
    assert run.tokens_per_second > 0 and run.eta_seconds == 0
    assert run.engine == started.engine
    facts = run.reproducibility
    assert (facts.weights_hash, facts.chat_template_hash) == (started.weights_hash, started.chat_template_hash)
    assert len(facts.dataset_sha256) == 64 and facts.model_path.endswith("/tiny-a") and facts.engine == run.engine
    assert facts.sampling.max_tokens == 24 and not facts.sampling_explicit
    listed = (await inference.ListResults(pb.ListResultsRequest(run_id=run_id))).results
    assert len(listed) == 20 and {result.dataset_id for result in listed} == {dataset.dataset_id}

    mine = [message for message in progress if message.run_id == run_id]
    assert mine, "no RunProgress was published"
    assert mine[-1].done == 20 and mine[-1].total == 20

    metrics = worker.metrics()
    assert metrics[("wb_tokens_generated_total", "tiny-a")] >= sum(result.output_tokens for result in results)
    assert ("wb_shards_in_flight", "tiny-a") in metrics


async def test_a_shard_left_by_a_dead_worker_is_finished_by_another_without_duplicates(
    worker: WorkerProcess, inference: Any, datasets: Any, events: JetStreamEventStore
) -> None:
    dataset = await upload(datasets, "twenty.jsonl", [*mixed_records()[:19], {"id": "r19", "prompt": "hello"}])
    ids = await record_ids(datasets, dataset.dataset_id)

    # Given a first worker that took the run's first shard, recorded 5 results and died.
    async with paused(worker, events):
        request = pb.StartRunRequest(dataset_id=dataset.dataset_id, model_id="tiny-a")
        run_id = (await inference.StartRun(request)).run.run_id
        first_worker = await events.js.pull_subscribe_bind(consumer_name("tiny-a"), stream=WORK_STREAM)
        (msg,) = await first_worker.fetch(1, timeout=10)
        shard = pb.RunShard.FromString(msg.data)
        assert (shard.run_id, shard.offset, shard.limit) == (run_id, 0, 8)
        for record_id in ids[:5]:
            result = pb.ResultRecorded(
                run_id=run_id,
                dataset_id=dataset.dataset_id,
                model_id="tiny-a",
                record_id=record_id,
                output_text="recorded before the crash",
                finish_reason="length",
                output_tokens=3,
            )
            await events.append(NewEvent(f"wb.results.{run_id}", result, msg_id=f"result:{run_id}:{record_id}"))
        await msg.nak()  # what AckWait would do, without waiting for it
        await first_worker.unsubscribe()

    # When the live worker gets the shard again, then it records only the 15 missing results.
    run = await wait_for_run(inference, run_id, worker)

    results = await results_of(events, run_id)
    counts = Counter(result.record_id for result in results)
    assert sorted(counts) == sorted(ids) and set(counts.values()) == {1}
    kept = {result.record_id for result in results if result.output_text == "recorded before the crash"}
    assert kept == set(ids[:5])
    assert (run.status, run.done) == (pb.RUN_STATUS_COMPLETED, 20)
    assert "shard at 0: 5 records already recorded, skipped" in worker.log_tail(400)

    # And a shard delivered once more after the end adds nothing either.
    await events.js.publish("wb.work.tiny-a", shard.SerializeToString(), headers={"Nats-Msg-Id": f"again:{run_id}"})
    await until_queue_is_empty(events, "tiny-a")
    assert await events.count(f"wb.results.{run_id}") == 20
    assert await events.count(f"wb.runs.{run_id}") == 3


async def test_a_model_that_cannot_load_fails_its_run_with_a_readable_error(
    worker: WorkerProcess, inference: Any, datasets: Any, events: JetStreamEventStore
) -> None:
    dataset = await upload(datasets, "three.jsonl", mixed_records()[:3])

    request = pb.StartRunRequest(dataset_id=dataset.dataset_id, model_id="broken")
    run = await wait_for_run(inference, (await inference.StartRun(request)).run.run_id, worker, within_s=120)

    assert run.status == pb.RUN_STATUS_FAILED
    assert run.error.startswith("model broken could not be loaded from ")
    assert await events.count(f"wb.results.{run.run_id}") == 0
    await until_queue_is_empty(events, "broken")  # the shard was terminated, not left to retry


async def test_a_run_cancelled_mid_way_stops_and_keeps_what_it_recorded(
    worker: WorkerProcess, inference: Any, datasets: Any, events: JetStreamEventStore
) -> None:
    records = [{"id": f"c{n:03d}", "prompt": f"tell me a long story about the river {n}"} for n in range(160)]
    dataset = await upload(datasets, "long.jsonl", records)
    request = pb.StartRunRequest(
        dataset_id=dataset.dataset_id,
        model_id="tiny-a",
        sampling=pb.SamplingParams(temperature=1.0, top_p=1.0, max_tokens=400, seed=1),
    )
    run_id = (await inference.StartRun(request)).run.run_id
    # The first two shards start together and end together; cancel once the third is in work, so
    # that a generation is surely in flight (it takes about a second) when the cancel arrives.
    deadline = time.monotonic() + 120
    third = f"shard of run {run_id} records 16..23 (delivery 1)"
    while await events.count(f"wb.results.{run_id}") == 0 or third not in worker.log_tail(100):
        assert time.monotonic() < deadline, worker.log_tail()
        await asyncio.sleep(0.05)

    # The worker is held while the cancel is recorded: on a loaded machine the shard in work could
    # otherwise end (and the next one not yet start) before the cancel arrives, leaving none to stop.
    freeze(worker.process.pid)
    try:
        cancelled = (await inference.CancelRun(pb.CancelRunRequest(run_id=run_id))).run
    finally:
        thaw(worker.process.pid)
    run = await wait_for_run(inference, run_id, worker)

    assert cancelled.status == pb.RUN_STATUS_CANCELLED and run.status == pb.RUN_STATUS_CANCELLED
    await until_queue_is_empty(events, "tiny-a")  # the worker let go of every shard of the run
    kept = await events.count(f"wb.results.{run_id}")
    assert 0 < kept < len(records)
    await asyncio.sleep(2)
    assert await events.count(f"wb.results.{run_id}") == kept  # nothing generated after the cancel settled
    assert "cancelled: shard at" in worker.log_tail(400)
    with pytest.raises(Exception, match="already ended"):
        await inference.CancelRun(pb.CancelRunRequest(run_id=(await finished_run(inference, datasets, worker))))


async def finished_run(inference: Any, datasets: Any, worker: WorkerProcess) -> str:
    dataset = await upload(datasets, "one.jsonl", [{"id": "x", "prompt": "hello"}])
    run_id = (await inference.StartRun(pb.StartRunRequest(dataset_id=dataset.dataset_id, model_id="tiny-a"))).run.run_id
    await wait_for_run(inference, run_id, worker)
    return str(run_id)


VERDICT = {
    "type": "object",
    "properties": {
        "recommendation": {"enum": ["accept", "reject", "revise"]},
        "trajectory": {"enum": ["up", "down", "flat"]},
        "confident": {"type": "boolean"},
    },
    "required": ["recommendation", "trajectory", "confident"],
    "additionalProperties": False,
}


async def test_a_run_with_a_json_schema_gets_answers_valid_against_it(
    worker: WorkerProcess, inference: Any, datasets: Any, events: JetStreamEventStore
) -> None:
    records = [{"id": f"s{n}", "prompt": f"review paper {n}"} for n in range(6)]
    records.append({"id": "chat", "messages": [{"role": "user", "content": "judge this answer"}]})
    dataset = await upload(datasets, "verdicts.jsonl", records)
    request = pb.StartRunRequest(
        dataset_id=dataset.dataset_id,
        model_id="tiny-a",
        sampling=pb.SamplingParams(temperature=1.0, top_p=1.0, max_tokens=128, seed=7),
        json_schema=json.dumps(VERDICT),
    )

    run = await wait_for_run(inference, (await inference.StartRun(request)).run.run_id, worker)

    assert (run.status, run.failed) == (pb.RUN_STATUS_COMPLETED, 0)
    assert json.loads(run.reproducibility.json_schema) == VERDICT
    results = await results_of(events, run.run_id)
    assert len(results) == len(records)
    for result in results:  # random weights, yet every answer is a valid verdict
        jsonschema.validate(json.loads(result.output_text), VERDICT)
        assert result.finish_reason == "stop"


async def test_the_model_shows_the_worker_that_serves_it_and_its_state(inference: Any, worker: WorkerProcess) -> None:
    models = {model.model_id: model for model in (await inference.ListModels(pb.ListModelsRequest())).models}

    (serving,) = models["tiny-a"].workers
    assert serving.worker == "test-worker" and serving.state in (pb.WORKER_STATE_READY, pb.WORKER_STATE_BUSY)
    assert models["tiny-b"].workers == []  # no worker serves it in these tests


@contextlib.asynccontextmanager
async def paused(worker: WorkerProcess, events: JetStreamEventStore) -> AsyncIterator[None]:
    """Freezes the worker and waits until its pending pull requests have expired at the server."""
    worker.pause()
    try:
        deadline = time.monotonic() + 30
        while (await events.js.consumer_info(WORK_STREAM, consumer_name("tiny-a"))).num_waiting:
            assert time.monotonic() < deadline, "the frozen worker's pull request never expired"
            await asyncio.sleep(0.2)
        yield
    finally:
        worker.resume()


async def until_queue_is_empty(events: JetStreamEventStore, model_id: str, within_s: float = 60) -> None:
    deadline = time.monotonic() + within_s
    while True:
        info = await events.js.consumer_info(WORK_STREAM, consumer_name(model_id))
        if info.num_pending == 0 and info.num_ack_pending == 0:
            return
        assert time.monotonic() < deadline, f"shards still queued for {model_id}: {info}"
        await asyncio.sleep(0.2)
