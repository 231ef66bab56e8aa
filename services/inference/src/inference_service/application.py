"""The inference API's use cases: list models, start a run, and read runs and results.

Starting a run follows decide -> append, then waits for this service's own projection, so a read
right after it sees the run. Read-model queries run in worker threads, so a slow one holds up
neither the projector (which shares this event loop) nor other calls.
"""

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from eventlog import AppendTimeout, ConcurrencyConflict, EventStore, NewEvent, ProjectionRunner, load_aggregate
from eventlog.tasks import raise_if_cancelling
from inference_service.adapters.datasets_client import DatasetSummary
from inference_service.adapters.read_model import RunsReadModel
from inference_service.domain.commands import CancelRun, RequestRun
from inference_service.domain.errors import Conflict, InvalidInput, NotFound, Unavailable
from inference_service.domain.models import ModelSpec, Sampling, sampling_problems
from inference_service.domain.progress import plan_shards
from inference_service.domain.state import (
    RunState,
    RunStatus,
    decide,
    evolve,
    is_run_id,
    run_id_for_request,
    run_subject,
    sampling_to_proto,
)
from servicehost.clock import Clock, utc_now
from workbench.inference.v1 import inference_pb2 as pb

log = logging.getLogger(__name__)


class Datasets(Protocol):
    """The datasets service, asked whether a dataset exists and how many records it has."""

    async def get(self, dataset_id: str) -> DatasetSummary:
        """The dataset's summary; NotFound when there is no such dataset."""
        ...


class WorkerLiveness(Protocol):
    """When each worker was last heard of (its heartbeats on core NATS; a dict in unit tests)."""

    def last_seen(self, worker: str) -> datetime | None: ...


class ShardQueue(Protocol):
    """The work queue the workers pull shards from (NATS WB_WORK; a list in unit tests)."""

    async def publish(self, shards: Sequence[pb.RunShard]) -> None:
        """Enqueues shards; publishing the same shard again is a no-op (Unavailable when unconfirmed)."""
        ...


REQUEUE_MAX_AGE = timedelta(hours=23)
PROJECTION_WAIT_S = 3.0  # how long StartRun waits for the read model before answering from its own events
HEARTBEAT_TIMEOUT = timedelta(seconds=20)  # a worker unheard of for longer is taken for gone
MAX_SCHEMA_BYTES = 64 * 1024
MAX_RESULTS_PAGE = 1000
RECONCILE_EVERY_S = 30.0


def checked_schema(json_schema: str) -> str:
    """The run's JSON schema, checked to be a JSON object, in compact form ("" for none)."""
    if not json_schema.strip():
        return ""
    if len(json_schema.encode()) > MAX_SCHEMA_BYTES:
        raise InvalidInput(f"json_schema is larger than {MAX_SCHEMA_BYTES} bytes; simplify the schema")
    try:
        schema = json.loads(json_schema)
    except json.JSONDecodeError as error:
        raise InvalidInput(f"json_schema is not valid JSON: {error}") from None
    if not isinstance(schema, dict):
        raise InvalidInput('json_schema must be a JSON object (a JSON schema such as {"type": "object", ...})')
    return json.dumps(schema, separators=(",", ":"), ensure_ascii=False)


def waiting_reason(model_id: str, workers: Sequence[pb.WorkerView]) -> str:
    """Why a queued run of the model does not start yet, as the model's live workers tell."""
    if not workers:
        return f"no worker serves {model_id} yet: start one (python -m inference_service worker)"
    if all(view.state == pb.WORKER_STATE_LOADING for view in workers):
        return f"a worker is loading {model_id}"
    return ""


@dataclass(frozen=True, slots=True)
class ModelWithWorkers:
    """A model of the models file and the workers that serve it now (gone ones left out)."""

    spec: ModelSpec
    workers: Sequence[pb.WorkerView]


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
    liveness: WorkerLiveness | None = None  # None: take every announced worker at its word
    shard_size: int = 256
    clock: Clock = utc_now
    new_id: Callable[[], str] = new_run_id
    projection_wait_s: float = PROJECTION_WAIT_S
    _models_by_id: dict[str, ModelSpec] = field(init=False)
    _started: datetime = field(init=False)

    def __post_init__(self) -> None:
        self._models_by_id = {model.model_id: model for model in self.models}
        self._started = self.clock()

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

    async def start_run(
        self,
        dataset_id: str,
        model_id: str,
        sampling: Sampling | None = None,
        request_id: str = "",
        json_schema: str = "",
    ) -> RunState:
        """Requests a run of a model over a dataset and queues its shards; returns the queued run.

        sampling None uses the model's defaults, over which each record's own sampling fields (an
        OpenAI batch body's max_tokens, ...) take precedence; a sampling given here applies to every
        record as it is. request_id (the client's): a retry with the same id answers the run the
        first attempt started, and queues its shards again in case that attempt stopped before (the
        queue drops shards it already has). json_schema: every answer must be valid against it.
        Raises NotFound for an unknown model or dataset, InvalidInput for bad sampling or schema,
        FailedPrecondition for an empty dataset, Conflict for a request id used for another run,
        Unavailable when the event log or the work queue does not confirm in time. Once the run is
        stored it is answered even if the read model lags (from its own events).
        """
        if not dataset_id:
            raise InvalidInput("dataset_id is required")
        model = self.model(model_id)
        explicit = sampling is not None
        sampling = sampling or model.sampling
        problems = sampling_problems(sampling, model.max_model_len)
        if problems:
            raise InvalidInput(f"sampling for {model_id}: " + "; ".join(problems))
        schema = checked_schema(json_schema)
        dataset = await self.datasets.get(dataset_id)
        run_id = run_id_for_request(request_id) if request_id else self.new_id()
        before = await self._load(run_id) if request_id else RunState(run_id)
        command = RequestRun(
            run_id,
            dataset_id,
            model_id,
            sampling,
            dataset.record_count,
            self.clock(),
            explicit,
            request_id,
            schema,
            dataset.sha256,
            model.path,
        )
        new_events = decide(before, command)
        sequence = await self._append(run_id, new_events)
        queued = before
        for new in new_events:
            queued = evolve(queued, new.event, sequence)
        if queued.status is RunStatus.QUEUED:
            await self.queue.publish(self._shards(queued))
        if not new_events:  # a retry: the run stands as its events say, whatever the read model has yet
            with contextlib.suppress(NotFound):
                return await self.get_run(run_id)
            return queued
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

    async def cancel_run(self, run_id: str) -> RunState:
        """Cancels a queued or running run: workers abort its generations, its recorded results stay.

        NotFound for an unknown run; FailedPrecondition when it has already ended; cancelling a
        cancelled run again is a no-op.
        """
        if not is_run_id(run_id):
            raise NotFound(f"run {run_id!r} not found; ListRuns shows the runs that exist")
        new_events = decide(await self._load(run_id), CancelRun(run_id, self.clock()))
        sequence = await self._append(run_id, new_events)
        with contextlib.suppress(TimeoutError):
            await self.projection.wait_for(sequence, within=self.projection_wait_s)
        return await self.get_run(run_id)

    async def list_models_with_workers(self) -> list[ModelWithWorkers]:
        """Every model of the models file, in file order, with the workers that serve it now."""
        workers = await asyncio.to_thread(self.read_model.workers)
        return [ModelWithWorkers(spec, self._alive(workers.get(spec.model_id, []))) for spec in self.models]

    async def waiting_for(self, runs: Sequence[RunState]) -> dict[str, str]:
        """Why each queued run does not start yet, when the workers tell (by run id; "" otherwise)."""
        queued = [run for run in runs if run.status is RunStatus.QUEUED]
        if not queued:
            return {}
        workers = await asyncio.to_thread(self.read_model.workers)
        return {run.run_id: waiting_reason(run.model_id, self._alive(workers.get(run.model_id, []))) for run in queued}

    async def results_page(self, run_id: str, offset: int, limit: int) -> tuple[list[pb.Result], int]:
        """A run's results in recorded order (at most limit from offset) and how many it has."""
        if not run_id:
            raise InvalidInput("a page of results needs a run_id")
        if offset < 0 or not 1 <= limit <= MAX_RESULTS_PAGE:
            raise InvalidInput(f"offset must be 0 or more and limit between 1 and {MAX_RESULTS_PAGE}")
        await self.get_run(run_id)  # NotFound for an unknown run
        return await asyncio.to_thread(self.read_model.results_page, run_id, offset, limit)

    async def reconcile(self, every_s: float = RECONCILE_EVERY_S) -> None:
        """Forever: queues again the shards of runs still queued (see requeue_queued_runs)."""
        while True:
            await asyncio.sleep(every_s)
            try:
                await self.requeue_queued_runs()
            except Exception:  # NATS away for a moment: the next round tries again
                raise_if_cancelling()
                log.warning("could not queue again the shards of queued runs", exc_info=True)

    def _alive(self, workers: Sequence[pb.WorkerView]) -> list[pb.WorkerView]:
        now = self.clock()
        alive = []
        for view in workers:
            seen = self.liveness.last_seen(view.worker) if self.liveness is not None else now
            recent = seen is not None and now - seen < HEARTBEAT_TIMEOUT
            # A worker heard of before this API started is given a heartbeat's time to speak up.
            young = seen is None and now - self._started < HEARTBEAT_TIMEOUT
            if view.state != pb.WORKER_STATE_GONE and (recent or young):
                alive.append(view)
        return alive

    async def _load(self, run_id: str) -> RunState:
        return await load_aggregate(self.store, run_subject(run_id), RunState(run_id), evolve)

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
                json_schema=run.json_schema,
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
