"""The inference application's use cases on the in-memory event store: start a run, refuse a bad one,
enqueue again the shards of runs a crash left queued, and answer from the read model."""

import itertools
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest

from eventlog import NewEvent
from inference_service.adapters.datasets_client import DatasetSummary
from inference_service.adapters.read_model import RunsProjection, RunsReadModel
from inference_service.application import InferenceApplication
from inference_service.domain.commands import BeginRun, RequestRun
from inference_service.domain.errors import Conflict, FailedPrecondition, InvalidInput, NotFound
from inference_service.domain.models import ModelSpec, Sampling
from inference_service.domain.state import RunState, RunStatus, decide, sampling_to_proto
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
        return DatasetSummary(dataset_id, f"{dataset_id}.jsonl", self.record_counts[dataset_id])


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
