"""A worker's use case: run one shard of a run through the model and record a result per record.

Every record of the shard goes to the engine at once (the engine batches them); each result is
appended as soon as it is ready, many appends in flight, and the shard counts as done only when
all of them are stored. A redelivered shard skips the records that already have a result.

One record must not take a run down: when the engine dies, the shard's unrecorded records are tried
again on a fresh engine, halving the set each time it dies again, until the record that kills it is
alone; that record gets a failed result naming why, the others complete. A cancelled run's
generations are aborted (its recorded results stay); a generation that hangs is aborted after
generation_timeout_s and recorded as failed.
"""

import asyncio
import contextlib
import enum
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from prometheus_client import Counter

from eventlog import PendingAppend
from eventlog.tasks import cancel_and_wait, raise_if_cancelling
from inference_service.adapters.datasets_client import DatasetRecord
from inference_service.adapters.engine import Engine, EngineLoadError, EngineUnavailable, Generation, RecordFailed
from inference_service.adapters.run_log import RunLog
from inference_service.domain.commands import BeginRun, CompleteRun, FailRun, RecordResult
from inference_service.domain.models import Sampling, record_sampling
from inference_service.domain.state import RunState, RunStatus, decide, record_result, sampling_from_proto
from inference_service.worker.engines import EngineCache
from inference_service.worker.progress import ProgressBoard, RunTracker
from servicehost.clock import Clock, utc_now
from workbench.inference.v1 import inference_pb2 as pb

log = logging.getLogger(__name__)

TOKENS_GENERATED = Counter("wb_tokens_generated_total", "output tokens this worker generated", ["model"])
ENGINE_RESTARTS = Counter(
    "wb_engine_restarts_total", "engines that died mid-shard and were dropped, to be loaded afresh", ["model"]
)

GENERATION_TIMEOUT_S = 600.0
NO_ANSWER = Generation(text="", finish_reason="error", prompt_tokens=0, output_tokens=0)  # a failed record
CANCEL_POLL_S = 5.0  # how often a shard in work looks whether its run was cancelled, in case it was not told


class RecordSource(Protocol):
    """Where a shard's records come from (the datasets service)."""

    def read_records(self, dataset_id: str, offset: int, limit: int) -> AsyncIterator[DatasetRecord]: ...


class Cancellations(Protocol):
    """Tells at once that a run was cancelled (the worker's CancelWatch)."""

    def event_for(self, run_id: str) -> asyncio.Event: ...


class ShardWatcher(Protocol):
    """Told when shards of a model start and end (the worker's Presence: BUSY and READY)."""

    async def shard_started(self, model_id: str) -> None: ...

    async def shard_ended(self, model_id: str) -> None: ...


class Outcome(enum.Enum):
    ACK = "ack"  # done, or nothing left to do: remove it from the queue
    TERM = "term"  # can never succeed (the run failed): remove it without retrying


class RunCancelled(Exception):
    """The run was cancelled while its shard was in work; the shard's generations were aborted."""


@dataclass
class ShardJob:
    """What a worker does with a shard: generate every record, record the results, complete the run.

    Shards of several runs (or of one) may be in work at once; nothing here is per shard.
    """

    runs: RunLog
    records: RecordSource
    engines: EngineCache
    progress: ProgressBoard
    worker_name: str
    clock: Clock = utc_now
    watcher: ShardWatcher | None = None
    generation_timeout_s: float = GENERATION_TIMEOUT_S
    cancel_poll_s: float = CANCEL_POLL_S
    cancellations: Cancellations | None = None
    _isolating: dict[str, asyncio.Lock] = field(default_factory=dict, init=False)

    async def process(self, shard: pb.RunShard, redelivered: bool) -> Outcome:
        """Generates and records the shard's results; returns whether to ack or terminate the message.

        Raises on failures worth retrying (datasets service away, the log not confirming, an engine
        that keeps dying): the caller naks.
        """
        state = await self.runs.load(shard.run_id)
        if state.status is None:
            log.error("shard of unknown run %s dropped (no RunRequested on the log)", shard.run_id)
            return Outcome.TERM
        if state.finished:
            log.info("run %s is %s; shard at %d has nothing to do", shard.run_id, state.status, shard.offset)
            return Outcome.ACK
        if self.watcher is not None:
            await self.watcher.shard_started(shard.model_id)
        try:
            return await self._process(shard, state, redelivered)
        except EngineLoadError as error:
            log.error("%s", error)
            await self.fail(shard.run_id, str(error))
            return Outcome.TERM
        finally:
            if self.watcher is not None:
                await self.watcher.shard_ended(shard.model_id)

    async def _process(self, shard: pb.RunShard, state: RunState, redelivered: bool) -> Outcome:
        engine = await self.engines.get(shard.model_id)
        facts = engine.facts
        begin = BeginRun(
            shard.run_id,
            self.worker_name,
            facts.name,
            facts.model_revision,
            self.clock(),
            facts.weights_hash,
            facts.chat_template_hash,
        )
        # RunStarted has one message id per run: a state made stale meanwhile by another worker's
        # start only makes the append a duplicate the log drops.
        await self.runs.append(decide(state, begin))

        already = await self.runs.recorded(shard.run_id) if redelivered else {}
        shard_records = [r async for r in self.records.read_records(shard.dataset_id, shard.offset, shard.limit)]
        records = [record for record in shard_records if record.record_id not in already]
        if len(records) < len(shard_records):
            skipped = len(shard_records) - len(records)
            log.info("run %s shard at %d: %d records already recorded, skipped", shard.run_id, shard.offset, skipped)
        async with self.progress.track(shard) as tracker:
            try:
                await self._generate_many(engine, shard, records, tracker)
            except EngineUnavailable as error:
                await self.engines.discard(shard.model_id, engine)
                ENGINE_RESTARTS.labels(shard.model_id).inc()
                await self._isolate(shard, records, error, tracker)
            except RunCancelled:
                log.info("run %s cancelled: shard at %d stopped", shard.run_id, shard.offset)
                return Outcome.ACK
        # Completing before the ack: a worker that dies in between leaves the shard to be redone
        # (every record then skipped), never a run that has all its results but is not completed.
        await self.complete_if_done(shard.run_id)
        return Outcome.ACK

    async def give_up(self, shard: pb.RunShard, reason: str) -> None:
        """The shard's deliveries ran out: each of its records without a result gets a failed one
        with the reason, and the run ends (failed outright when its records cannot even be read).
        A run that has ended meanwhile (cancelled, failed) is left as it is."""
        if (await self.runs.load(shard.run_id)).finished:
            return
        try:
            records = [r async for r in self.records.read_records(shard.dataset_id, shard.offset, shard.limit)]
        except Exception as error:
            await self.fail(shard.run_id, f"{reason}; its records could not be read either: {error}")
            return
        pending = [await self._record_failure(shard, record, reason) for record in await self._left(shard, records)]
        await _confirm_all(pending)
        await self.complete_if_done(shard.run_id)

    async def complete_if_done(self, run_id: str) -> None:
        """Ends the run once the log holds a result for each of its records: completed, with the
        failures counted, or failed when not one record could be generated."""
        state = await self.runs.load(run_id)
        if state.finished or await self.runs.count_results(run_id) < state.total:
            return
        recorded = await self.runs.recorded(run_id)
        failed = sum(recorded.values())
        if recorded and failed == len(recorded):
            error = f"all {failed} records failed; each result says why"
            if await self.runs.append(decide(state, FailRun(run_id, error, self.clock()))):
                log.info("run %s failed: %s", run_id, error)
            return
        complete = CompleteRun(run_id, len(recorded), failed, self.clock())
        if await self.runs.append(decide(state, complete)):
            log.info("run %s completed: %d results, %d failed", run_id, complete.done, complete.failed)

    async def fail(self, run_id: str, error: str) -> None:
        """Marks the run failed with a readable error (no-op when it has already finished)."""
        state = await self.runs.load(run_id)
        await self.runs.append(decide(state, FailRun(run_id, error, self.clock())))

    async def _generate_many(
        self, engine: Engine, shard: pb.RunShard, records: Sequence[DatasetRecord], tracker: RunTracker | None
    ) -> None:
        """Generates and records every record at once; raises EngineUnavailable when the engine dies
        (the results already finished are stored first) and RunCancelled when the run is cancelled."""
        if not records:
            return
        sampling = sampling_from_proto(shard.sampling)
        request_ids = {record.record_id: _request_id(shard.run_id, record.record_id) for record in records}
        tasks = [
            asyncio.create_task(self._generate(engine, shard, sampling, record, request_ids[record.record_id], tracker))
            for record in records
        ]
        everything = asyncio.gather(*tasks)
        # Cancelled children leave it failed with CancelledError: mark that seen, or asyncio logs it.
        everything.add_done_callback(lambda done: done.cancelled() or done.exception())
        watch = asyncio.create_task(self._until_cancelled(shard.run_id))
        try:
            either: set[asyncio.Future[object]] = {everything, watch}  # type: ignore[arg-type]
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            if watch.done() and not everything.done():
                await self._abort(engine, tasks, request_ids.values())
                raise RunCancelled(shard.run_id)
            pending = await everything
        except BaseException:
            await cancel_and_wait(*tasks)
            await _confirm_finished(tasks)
            raise
        finally:
            watch.cancel()
        await _confirm_all(pending)

    async def _isolate(
        self, shard: pb.RunShard, records: Sequence[DatasetRecord], error: EngineUnavailable, tracker: RunTracker
    ) -> None:
        """After the engine died: narrows the unrecorded records down to the one that kills it.

        One model isolates one shard at a time. Another shard of the model may still be generating
        on the same engine meanwhile (up to WB_WORKER_MAX_SHARDS), so a second bad record in it could
        have a record of this shard blamed; set WB_WORKER_MAX_SHARDS=1 where that matters.
        Gives up (EngineUnavailable, the shard is retried) when the engine dies more often than
        halving can explain: then it is the engine, not a record.
        """
        log.warning("the engine of %s died in run %s (%s); isolating the record", shard.model_id, shard.run_id, error)
        async with self._isolating.setdefault(shard.model_id, asyncio.Lock()):
            left = await self._left(shard, records)
            budget = [2 * math.ceil(math.log2(max(len(left), 1))) + 3]
            await self._narrow(shard, left, tracker, budget)

    async def _narrow(
        self, shard: pb.RunShard, records: Sequence[DatasetRecord], tracker: RunTracker, budget: list[int]
    ) -> None:
        if not records:
            return
        engine = await self.engines.get(shard.model_id)
        try:
            await self._generate_many(engine, shard, records, tracker)
            return
        except EngineUnavailable as error:
            await self.engines.discard(shard.model_id, engine)
            ENGINE_RESTARTS.labels(shard.model_id).inc()
            budget[0] -= 1
            if budget[0] < 0:
                message = f"the engine of {shard.model_id} keeps dying, whatever it is given: {error}"
                raise EngineUnavailable(message) from error
            if len(records) == 1:
                (record,) = records
                log.error("record %r of run %s kills the engine: recorded as failed", record.record_id, shard.run_id)
                reason = f"the engine died on this record, alone (it was restarted for the others): {error}"
                await (await self._record_failure(shard, record, reason, tracker)).confirm()
                return
            left = await self._left(shard, records)
        half = (len(left) + 1) // 2
        for part in (left[:half], left[half:]):
            await self._narrow(shard, part, tracker, budget)

    async def _left(self, shard: pb.RunShard, records: Sequence[DatasetRecord]) -> list[DatasetRecord]:
        recorded = await self.runs.recorded(shard.run_id)
        return [record for record in records if record.record_id not in recorded]

    async def _until_cancelled(self, run_id: str) -> None:
        told = self.cancellations.event_for(run_id) if self.cancellations is not None else asyncio.Event()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(told.wait(), self.cancel_poll_s)
            if told.is_set():
                return
            try:
                state = await self.runs.load(run_id)
            except Exception:  # the log away for a moment: look again next time
                raise_if_cancelling()
                log.debug("could not look whether run %s was cancelled", run_id, exc_info=True)
                continue
            if state.status is RunStatus.CANCELLED:
                return

    @staticmethod
    async def _abort(engine: Engine, tasks: Sequence[asyncio.Task[PendingAppend]], request_ids: Iterable[str]) -> None:
        unfinished = [task for task in tasks if not task.done()]
        await cancel_and_wait(*unfinished)
        try:  # cancelling the calls already aborts them in vLLM; this makes sure for every backend
            await engine.abort(list(request_ids))
        except Exception:
            log.warning("aborting the generations of a cancelled run failed", exc_info=True)

    async def _generate(
        self,
        engine: Engine,
        shard: pb.RunShard,
        sampling: Sampling,
        record: DatasetRecord,
        request_id: str,
        tracker: RunTracker | None,
    ) -> PendingAppend:
        began = time.monotonic()
        error = ""
        own = record_sampling(sampling, shard.sampling_explicit, record.sampling)
        schema = shard.json_schema or record.json_schema
        try:
            generation = await asyncio.wait_for(
                engine.generate(record.prompt, own, request_id, schema), self.generation_timeout_s
            )
        except RecordFailed as failure:
            # One bad record is data, not a reason to stop the shard.
            error = str(failure)
            generation = NO_ANSWER
        except TimeoutError:
            with contextlib.suppress(Exception):
                await engine.abort([request_id])
            error = f"no answer within {self.generation_timeout_s:g} s (WB_WORKER_GENERATION_TIMEOUT_S); aborted"
            generation = NO_ANSWER
        return await self._record(shard, record, generation, error, (time.monotonic() - began) * 1000, tracker)

    async def _record_failure(
        self, shard: pb.RunShard, record: DatasetRecord, error: str, tracker: RunTracker | None = None
    ) -> PendingAppend:
        return await self._record(shard, record, NO_ANSWER, error, 0.0, tracker)

    async def _record(
        self,
        shard: pb.RunShard,
        record: DatasetRecord,
        generation: Generation,
        error: str,
        latency_ms: float,
        tracker: RunTracker | None,
    ) -> PendingAppend:
        result = RecordResult(
            run_id=shard.run_id,
            dataset_id=shard.dataset_id,
            model_id=shard.model_id,
            record_id=record.record_id,
            output_text=generation.text,
            finish_reason=generation.finish_reason,
            prompt_tokens=generation.prompt_tokens,
            output_tokens=generation.output_tokens,
            latency_ms=latency_ms,
            error=error,
            recorded_at=self.clock(),
        )
        TOKENS_GENERATED.labels(shard.model_id).inc(generation.output_tokens)
        if tracker is not None:
            await tracker.record(bool(error), generation.output_tokens)
        # Last: a generation cancelled before this returns (another failed) leaves no append behind unconfirmed.
        return await self.runs.start_append(record_result(result))


def _request_id(run_id: str, record_id: str) -> str:
    return f"{run_id}/{record_id}/{uuid.uuid4().hex[:8]}"


async def _confirm_all(pending: Sequence[PendingAppend]) -> None:
    """Waits for every append at once and raises the first failure.

    All at once: each confirm() is bounded by the log's acknowledgement timeout, and when nats-server
    dies under a shard every append in flight loses its acknowledgement; one by one, a shard would
    wait that timeout once per lost result (minutes) while its keep-alive holds it from other
    workers. And every append is confirmed, so the store lets go of each one's wait for an answer.
    """
    outcomes = await asyncio.gather(*(item.confirm() for item in pending), return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome


async def _confirm_finished(tasks: Sequence[asyncio.Task[PendingAppend]]) -> None:
    """Waits for the appends of the generations that finished, so a retry sees their results."""
    finished = [task.result() for task in tasks if task.done() and not task.cancelled() and task.exception() is None]
    with contextlib.suppress(Exception):
        await _confirm_all(finished)
