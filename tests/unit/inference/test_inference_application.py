"""The inference application's use cases on the in-memory event store: start a run, refuse a bad one,
enqueue again the shards of runs a crash left queued, and answer from the read model."""

import asyncio
import itertools
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest

from eventlog import NewEvent
from inference_service.adapters.datasets_client import DatasetSummary
from inference_service.adapters.read_model import RunsProjection, RunsReadModel
from inference_service.application import InferenceApplication
from inference_service.domain.commands import BeginRun, RecordResult, RequestRun
from inference_service.domain.errors import Conflict, FailedPrecondition, InvalidInput, NotFound
from inference_service.domain.models import ModelSpec, Sampling
from inference_service.domain.state import RunState, RunStatus, decide, record_result, sampling_to_proto
from tests.unit.in_memory import Projected, projected
from workbench.datasets.v1.datasets_pb2 import DatasetDeleted
from workbench.inference.v1 import inference_pb2 as pb

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
TINY = ModelSpec("tiny-a", "Tiny A", "vllm", "/models/tiny-a", "local", 512, Sampling(max_tokens=24))
OTHER = ModelSpec("tiny-b", "Tiny B", "vllm", "/models/tiny-b", "local", 512)


class Queue:
    """The work queue, as a list of the shards published."""

    def __init__(self) -> None:
        self.shards: list[pb.RunShard] = []

    async def publish(self, shards: Sequence[pb.RunShard]) -> None:
        self.shards.extend(shards)


class Datasets:
    """The datasets service, knowing datasets by id and their record counts."""

    def __init__(self, **record_counts: int) -> None:
        self.record_counts = record_counts

    async def get(self, dataset_id: str) -> DatasetSummary:
        if dataset_id not in self.record_counts:
            raise NotFound(f"dataset {dataset_id!r} not found; upload it or pick one from ListDatasets")
        return DatasetSummary(dataset_id, f"{dataset_id}.jsonl", self.record_counts[dataset_id], f"sha-of-{dataset_id}")


def application(
    world: Projected, queue: Queue, models: Sequence[ModelSpec] = (TINY, OTHER), run_ids: Sequence[str] = ()
) -> InferenceApplication:
    ids = iter(run_ids) if run_ids else (f"run_{n:012x}" for n in itertools.count(1))
    return InferenceApplication(
        world.store,
        world.runner,
        RunsReadModel(world.database),
        models,
        queue,
        Datasets(ds_five=5, ds_empty=0),
        shard_size=2,
        clock=lambda: NOW,
        new_id=lambda: next(ids),
    )


@pytest.fixture
async def world() -> AsyncIterator[Projected]:
    async with projected(RunsProjection()) as world:
        yield world


async def test_a_started_run_is_stored_split_into_shards_and_answered_from_the_read_model(world: Projected) -> None:
    queue = Queue()
    app = application(world, queue)

    run = await app.start_run("ds_five", "tiny-a")

    assert (run.run_id, run.status, run.total, run.done) == ("run_000000000001", RunStatus.QUEUED, 5, 0)
    assert (run.sampling, run.requested_at) == (Sampling(max_tokens=24), NOW)  # the model's defaults
    [stored] = await world.store.read("wb.runs.>")
    assert isinstance(stored.event, pb.RunRequested)
    assert (stored.event.dataset_id, stored.event.model_id, stored.event.record_count) == ("ds_five", "tiny-a", 5)
    assert [(s.run_id, s.offset, s.limit, s.run_total) for s in queue.shards] == [
        ("run_000000000001", 0, 2, 5),
        ("run_000000000001", 2, 2, 5),
        ("run_000000000001", 4, 1, 5),
    ]
    assert {s.sampling.max_tokens for s in queue.shards} == {24}
    assert not stored.event.sampling_explicit and not any(s.sampling_explicit for s in queue.shards)
    assert world.runner.position == stored.sequence  # answered once its own projection had the run
    assert await app.get_run(run.run_id) == run
    assert await app.list_runs("ds_five", active_only=True) == [run]


async def test_sampling_given_with_the_request_is_the_runs_own(world: Projected) -> None:
    queue = Queue()
    app = application(world, queue)
    sampling = Sampling(temperature=0.7, top_p=0.9, max_tokens=8, seed=3)

    run = await app.start_run("ds_five", "tiny-b", sampling)

    assert (run.sampling, run.sampling_explicit) == (sampling, True)
    assert [s.sampling for s in queue.shards] == [sampling_to_proto(sampling)] * 3
    assert all(s.sampling_explicit for s in queue.shards)  # records' own sampling gives way to it


@pytest.mark.parametrize(
    ("dataset_id", "model_id", "sampling", "error", "message"),
    [
        ("ds_five", "gpt-9", None, NotFound, "known models: tiny-a, tiny-b"),
        ("ds_missing", "tiny-a", None, NotFound, "dataset 'ds_missing' not found"),
        ("", "tiny-a", None, InvalidInput, "dataset_id is required"),
        ("ds_five", "tiny-a", Sampling(max_tokens=4096), InvalidInput, "max_tokens must be between 1 and 511"),
        ("ds_five", "tiny-a", Sampling(top_p=0.0), InvalidInput, "top_p must be in (0, 1]"),
        ("ds_empty", "tiny-a", None, FailedPrecondition, "has no records"),
    ],
)
async def test_a_bad_run_request_is_refused_and_leaves_no_trace(
    world: Projected,
    dataset_id: str,
    model_id: str,
    sampling: Sampling | None,
    error: type[Exception],
    message: str,
) -> None:
    queue = Queue()
    app = application(world, queue)

    with pytest.raises(error) as caught:
        await app.start_run(dataset_id, model_id, sampling)

    assert message in str(caught.value)
    assert await world.store.read("wb.runs.>") == [] and queue.shards == []
    assert await app.list_runs() == []


async def test_a_run_id_drawn_twice_is_a_conflict_not_a_second_run(world: Projected) -> None:
    queue = Queue()
    app = application(world, queue, run_ids=["run_00000000dup1", "run_00000000dup1"])
    await app.start_run("ds_five", "tiny-a")

    with pytest.raises(Conflict, match="run_00000000dup1 already exists"):
        await app.start_run("ds_five", "tiny-b")

    assert len(await world.store.read("wb.runs.>")) == 1
    assert {shard.model_id for shard in queue.shards} == {"tiny-a"}


async def test_results_need_a_dataset_or_a_run(world: Projected) -> None:
    app = application(world, Queue())

    with pytest.raises(InvalidInput, match="give a dataset_id, a run_id, or both"):
        await app.list_results()


async def test_an_unknown_run_is_not_found(world: Projected) -> None:
    with pytest.raises(NotFound, match="run_000000000404"):
        await application(world, Queue()).get_run("run_000000000404")


async def test_at_start_only_recent_queued_runs_of_known_models_get_their_shards_again(world: Projected) -> None:
    # Given runs a crash left behind: queued (recent, old, of a model no longer in the file) and running,
    async def requested(run_id: str, model_id: str, hours_ago: float, total: int = 3) -> None:
        command = RequestRun(run_id, "ds_five", model_id, Sampling(), total, NOW - timedelta(hours=hours_ago))
        for new in decide(RunState(run_id), command):
            await world.store.append(new)

    await requested("run_00000000000a", "tiny-a", hours_ago=1)
    await requested("run_00000000000b", "tiny-a", hours_ago=30)  # older than the work stream's dedup window
    await requested("run_00000000000c", "gone", hours_ago=1)
    await requested("run_00000000000d", "tiny-a", hours_ago=1)
    begin = BeginRun("run_00000000000d", "w1", "vllm 0.32.0", "local", NOW)
    (started,) = decide(RunState("run_00000000000d", RunStatus.QUEUED), begin)
    await world.runner.wait_for(await world.store.append(started))
    queue = Queue()

    # when the API starts again,
    requeued = await application(world, queue).requeue_queued_runs()

    # then only the recent queued run of a known model has its shards on the queue again.
    assert requeued == 1
    assert [(s.run_id, s.offset, s.limit) for s in queue.shards] == [
        ("run_00000000000a", 0, 2),
        ("run_00000000000a", 2, 1),
    ]


async def test_a_deleted_datasets_runs_leave_the_read_model_and_its_later_events_stay_out(world: Projected) -> None:
    queue = Queue()
    app = application(world, queue)
    gone = await app.start_run("ds_five", "tiny-a")
    also_gone = await app.start_run("ds_five", "tiny-b")
    other = Datasets(ds_other=3)
    app.datasets = other
    elsewhere = await app.start_run("ds_other", "tiny-a")

    await world.store.append(NewEvent("wb.datasets.ds_five", DatasetDeleted(dataset_id="ds_five")))
    late = decide(RunState(gone.run_id), RequestRun("run_late", "ds_five", "tiny-a", Sampling(), 5, NOW))
    last = await world.store.append(late[0])
    await world.runner.wait_for(last)

    assert [run.run_id for run in await app.list_runs()] == [elsewhere.run_id]
    with pytest.raises(NotFound):
        await app.get_run(also_gone.run_id)
    assert await app.list_results("ds_five") == []


async def test_a_retried_request_answers_the_first_run_and_queues_its_shards_again(world: Projected) -> None:
    """The first attempt's append landed but its answer was lost (a stalled NATS): the retry with
    the same request id starts nothing new, and the shards the first attempt may not have queued are
    queued (the work queue drops the ones it has by their ids)."""
    queue = Queue()
    app = application(world, queue)

    first = await app.start_run("ds_five", "tiny-a", request_id="req-1")
    again = await app.start_run("ds_five", "tiny-a", request_id="req-1")

    assert again.run_id == first.run_id and again.request_id == "req-1"
    assert len(await world.store.read("wb.runs.>")) == 1
    assert [(s.run_id, s.offset) for s in queue.shards] == [(first.run_id, o) for o in (0, 2, 4)] * 2
    with pytest.raises(Conflict, match="use a new request id"):
        await app.start_run("ds_five", "tiny-b", request_id="req-1")


async def test_a_run_carries_its_schema_and_what_reproduces_it(world: Projected) -> None:
    queue = Queue()
    app = application(world, queue)
    schema = '{"type": "object", "properties": {"verdict": {"enum": ["hire", "pass"]}}}'

    run = await app.start_run("ds_five", "tiny-a", json_schema=schema)

    compact = '{"type":"object","properties":{"verdict":{"enum":["hire","pass"]}}}'
    assert (run.json_schema, run.model_path, run.dataset_sha256) == (compact, "/models/tiny-a", "sha-of-ds_five")
    assert {s.json_schema for s in queue.shards} == {compact}
    for bad, message in [("[1, 2]", "must be a JSON object"), ("{nope", "not valid JSON")]:
        with pytest.raises(InvalidInput, match=message):
            await app.start_run("ds_five", "tiny-a", json_schema=bad)


async def test_a_cancelled_run_ends_cancelled_once_and_an_ended_one_cannot_be(world: Projected) -> None:
    queue = Queue()
    app = application(world, queue)
    run = await app.start_run("ds_five", "tiny-a")

    cancelled = await app.cancel_run(run.run_id)
    again = await app.cancel_run(run.run_id)

    assert cancelled.status is RunStatus.CANCELLED and again.status is RunStatus.CANCELLED
    assert [type(e.event) for e in await world.store.read(f"wb.runs.{run.run_id}")] == [
        pb.RunRequested,
        pb.RunCancelled,
    ]
    done = await app.start_run("ds_five", "tiny-b")
    completed = await world.store.append(
        NewEvent(f"wb.runs.{done.run_id}", pb.RunCompleted(run_id=done.run_id, done=5))
    )
    await world.runner.wait_for(completed)
    with pytest.raises(FailedPrecondition, match="already ended"):
        await app.cancel_run(done.run_id)
    with pytest.raises(NotFound):
        await app.cancel_run("run_000000000bad")


async def test_a_queued_run_says_what_it_waits_for_from_the_workers_it_can_hear(world: Projected) -> None:
    queue = Queue()
    heard: dict[str, datetime] = {}
    app = application(world, queue)
    app.liveness = Heard(heard)
    run = await app.start_run("ds_five", "tiny-a")
    assert await app.waiting_for([run]) == {
        run.run_id: "no worker serves tiny-a yet: start one (python -m inference_service worker)"
    }

    await announce(world, "w1", ["tiny-a"], pb.WORKER_STATE_LOADING)
    heard["w1"] = NOW
    assert await app.waiting_for([run]) == {run.run_id: "a worker is loading tiny-a"}
    [model_a, model_b] = await app.list_models_with_workers()
    assert [(w.worker, w.state) for w in model_a.workers] == [("w1", pb.WORKER_STATE_LOADING)] and model_b.workers == []

    await announce(world, "w1", [], pb.WORKER_STATE_READY, model_id="tiny-a")
    assert await app.waiting_for([run]) == {run.run_id: ""}
    heard["w1"] = NOW - timedelta(minutes=5)  # silent since: killed outright
    assert (await app.list_models_with_workers())[0].workers == []


class Heard:
    def __init__(self, seen: dict[str, datetime]) -> None:
        self.seen = seen

    def last_seen(self, worker: str) -> datetime | None:
        return self.seen.get(worker)


async def announce(
    world: Projected, worker: str, model_ids: list[str], state: "pb.WorkerState.ValueType", model_id: str = ""
) -> None:
    events = []
    if model_ids:
        events.append(NewEvent(f"wb.workers.{worker}", pb.WorkerAnnounced(worker=worker, model_ids=model_ids)))
    for model in model_ids or [model_id]:
        events.append(
            NewEvent(f"wb.workers.{worker}", pb.WorkerStateChanged(worker=worker, model_id=model, state=state))
        )
    sequences = await world.store.append_many(events)
    await world.runner.wait_for(sequences[-1])


async def test_a_runs_results_come_in_pages_with_their_total(world: Projected) -> None:
    app = application(world, Queue())
    run = await app.start_run("ds_five", "tiny-a")
    for n in range(5):
        command = RecordResult(run.run_id, "ds_five", "tiny-a", f"r{n}", f"answer {n}", "stop", 3, 4, 1.0, "", NOW)
        last = await world.store.append(record_result(command))
    await world.runner.wait_for(last)

    page, total = await app.results_page(run.run_id, 1, 2)

    assert ([r.record_id for r in page], total) == (["r1", "r2"], 5)
    with pytest.raises(InvalidInput):
        await app.results_page(run.run_id, 0, 0)


class StalledQueue(Queue):
    """A work queue whose publish hangs and, when cancelled, raises an ordinary error instead, as
    nats-py's publish_async does (TooManyStalledMsgsError) when its pending publishes fill up."""

    def __init__(self) -> None:
        super().__init__()
        self.stalled = asyncio.Event()

    async def publish(self, shards: Sequence[pb.RunShard]) -> None:
        if not self.shards:  # StartRun's own publish goes through
            self.shards.extend(shards)
            return
        self.stalled.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise RuntimeError("too many stalled messages") from None


async def test_the_reconciler_stops_when_cancelled_even_if_the_queue_swallows_it(world: Projected) -> None:
    queue = StalledQueue()
    app = application(world, queue)
    await app.start_run("ds_five", "tiny-a")  # a queued run: each round publishes its shards again

    reconciling = asyncio.create_task(app.reconcile(every_s=0.01))
    await asyncio.wait_for(queue.stalled.wait(), 2)
    reconciling.cancel()

    await asyncio.wait({reconciling}, timeout=2)
    assert reconciling.cancelled()  # not caught and retried: whoever stops the service is not held up


def test_a_nul_in_model_output_is_recorded_as_a_replacement_character() -> None:
    command = RecordResult(
        run_id="run_1",
        dataset_id="ds",
        model_id="m",
        record_id="r",
        output_text="a\x00b",
        finish_reason="stop",
        prompt_tokens=1,
        output_tokens=2,
        latency_ms=1.0,
        error="",
        recorded_at=datetime(2026, 1, 1, tzinfo=UTC),
    )

    event = record_result(command).event

    assert isinstance(event, pb.ResultRecorded) and event.output_text == "a\ufffdb"
