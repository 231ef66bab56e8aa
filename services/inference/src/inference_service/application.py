"""The inference API's use cases: list models, start a run, and read runs and results.

Starting a run follows decide -> append, then waits for this service's own projection, so a read
right after it sees the run. Read-model queries run in worker threads, so a slow one holds up
neither the projector (which shares this event loop) nor other calls.
"""

import asyncio
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol

from eventlog import AppendTimeout, ConcurrencyConflict, EventStore, NewEvent, ProjectionRunner
from inference_service.adapters.datasets_client import DatasetSummary
from inference_service.adapters.read_model import RunsReadModel
from inference_service.domain.commands import RequestRun
from inference_service.domain.errors import Conflict, InvalidInput, NotFound, Unavailable
from inference_service.domain.models import ModelSpec, Sampling, sampling_problems
from inference_service.domain.progress import plan_shards
from inference_service.domain.state import RunState, RunStatus, decide, evolve, sampling_to_proto
from servicehost.clock import Clock, utc_now
from workbench.inference.v1 import inference_pb2 as pb

log = logging.getLogger(__name__)


class Datasets(Protocol):
    """The datasets service, asked whether a dataset exists and how many records it has."""

    async def get(self, dataset_id: str) -> DatasetSummary:
        """The dataset's summary; NotFound when there is no such dataset."""
        ...


class ShardQueue(Protocol):
    """The work queue the workers pull shards from (NATS WB_WORK; a list in unit tests)."""

    async def publish(self, shards: Sequence[pb.RunShard]) -> None:
        """Enqueues shards; publishing the same shard again is a no-op (Unavailable when unconfirmed)."""
        ...


REQUEUE_MAX_AGE = timedelta(hours=23)
PROJECTION_WAIT_S = 3.0  # how long StartRun waits for the read model before answering from its own events


def new_run_id() -> str:
    return "run_" + uuid.uuid4().hex[:12]


@dataclass
class InferenceApplication:
    """Everything the inference API can do, independent of gRPC: starts runs (RunRequested, then
    shards on the work queue) and answers from the read model."""

    store: EventStore
    projection: ProjectionRunner
    read_model: RunsReadModel
    models: Sequence[ModelSpec]
    queue: ShardQueue
    datasets: Datasets
    shard_size: int = 256
    clock: Clock = utc_now
    new_id: Callable[[], str] = new_run_id
    projection_wait_s: float = PROJECTION_WAIT_S
    _models_by_id: dict[str, ModelSpec] = field(init=False)

    def __post_init__(self) -> None:
        self._models_by_id = {model.model_id: model for model in self.models}

    def list_models(self) -> list[ModelSpec]:
        """Every model of the models file, in file order."""
        return list(self.models)

    def model(self, model_id: str) -> ModelSpec:
        """The model with this id; NotFound names the ids that exist."""
        try:
            return self._models_by_id[model_id]
        except KeyError:
            known = ", ".join(self._models_by_id) or "none"
            raise NotFound(f"model {model_id!r} is not in the models file; known models: {known}") from None

    async def start_run(self, dataset_id: str, model_id: str, sampling: Sampling | None = None) -> RunState:
        """Requests a run of a model over a dataset and queues its shards; returns the queued run.

        sampling None uses the model's defaults, over which each record's own sampling fields (an
        OpenAI batch body's max_tokens, ...) take precedence; a sampling given here applies to every
        record as it is. Raises NotFound for an unknown model or dataset,
        InvalidInput for bad sampling, FailedPrecondition for an empty dataset, Unavailable when the
        event log or the work queue does not confirm in time. Once the run is stored it is answered
        even if the read model lags (from its own events), so the user never starts it twice.
        """
        if not dataset_id:
            raise InvalidInput("dataset_id is required")
        model = self.model(model_id)
        explicit = sampling is not None
        sampling = sampling or model.sampling
        problems = sampling_problems(sampling, model.max_model_len)
        if problems:
            raise InvalidInput(f"sampling for {model_id}: " + "; ".join(problems))
        dataset = await self.datasets.get(dataset_id)
        run_id = self.new_id()
        command = RequestRun(run_id, dataset_id, model_id, sampling, dataset.record_count, self.clock(), explicit)
        new_events = decide(RunState(run_id), command)  # a new id: nothing to load
        sequence = await self._append(run_id, new_events)
        queued = RunState(run_id)
        for new in new_events:
            queued = evolve(queued, new.event, sequence)
        await self.queue.publish(self._shards(queued))
        try:
            await self.projection.wait_for(sequence, within=self.projection_wait_s)
        except TimeoutError:
            # The run is stored and its shards are queued: answering an error now would make the
            # user start it again. Its own events say all there is to say about a new run.
            log.warning(
                "read model behind run %s after %.1f s; answering from its events", run_id, self.projection_wait_s
            )
            return queued
        return await self.get_run(run_id)

    async def requeue_queued_runs(self, max_age: timedelta = REQUEUE_MAX_AGE) -> int:
        """Enqueues the shards of every recent run still queued again; returns how many runs.

        Called at start: a crash between a run's RunRequested and its shards would leave it queued
        forever. Shards already on the queue are dropped by their message ids (the work stream
        remembers them for 24 h, hence max_age).
        """
        now = self.clock()
        requeued = 0
        for run in await asyncio.to_thread(self.read_model.list_runs, active_only=True):
            recent = run.requested_at is not None and now - run.requested_at < max_age
            if run.status is RunStatus.QUEUED and recent and run.model_id in self._models_by_id:
                await self.queue.publish(self._shards(run))
                requeued += 1
        return requeued

    def _shards(self, run: RunState) -> list[pb.RunShard]:
        return [
            pb.RunShard(
                run_id=run.run_id,
                dataset_id=run.dataset_id,
                model_id=run.model_id,
                sampling=sampling_to_proto(run.sampling),
                sampling_explicit=run.sampling_explicit,
                offset=offset,
                limit=limit,
                run_total=run.total,
            )
            for offset, limit in plan_shards(run.total, self.shard_size)
        ]

    async def get_run(self, run_id: str) -> RunState:
        """The run as the read model has it; NotFound when there is no such run."""
        run = await asyncio.to_thread(self.read_model.get_run, run_id)
        if run is None:
            raise NotFound(f"run {run_id!r} not found; ListRuns shows the runs that exist")
        return run

    async def list_runs(self, dataset_id: str = "", active_only: bool = False) -> list[RunState]:
        """Runs, newest first; of one dataset when dataset_id is set; only queued or running ones if asked."""
        return await asyncio.to_thread(self.read_model.list_runs, dataset_id, active_only)

    async def list_results(
        self, dataset_id: str = "", run_id: str = "", record_ids: Sequence[str] = ()
    ) -> list[pb.Result]:
        """Results in the order they were recorded, of a dataset and/or of one run (one of them is needed).

        record_ids not empty: only those records' results (a page of the results view).
        """
        if not dataset_id and not run_id:
            raise InvalidInput("give a dataset_id, a run_id, or both")
        return await asyncio.to_thread(self.read_model.list_results, dataset_id, run_id, list(record_ids))

    async def _append(self, run_id: str, new_events: list[NewEvent]) -> int:
        """Appends the events; returns the last one's sequence."""
        sequence = 0
        for new in new_events:
            try:
                sequence = await self.store.append(new)
            except AppendTimeout as error:  # maybe stored, maybe not
                raise Unavailable(f"the event log did not confirm run {run_id} in time ({error}); try again") from None
            except ConcurrencyConflict:
                raise Conflict(f"run {run_id} already exists; start a new run instead") from None
        return sequence
