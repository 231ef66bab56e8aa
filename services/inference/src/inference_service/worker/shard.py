"""A worker's use case: run one shard of a run through the model and record a result per record.

Every record of the shard goes to the engine at once (the engine batches them); each result is
appended as soon as it is ready, many appends in flight, and the shard counts as done only when
all of them are stored. A redelivered shard skips the records that already have a result.
"""

import asyncio
import enum
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import Counter

from eventlog import PendingAppend
from inference_service.adapters.datasets_client import DatasetRecord
from inference_service.adapters.engine import Engine, EngineLoadError, EngineUnavailable, Generation, RecordFailed
from inference_service.adapters.run_log import RunLog
from inference_service.domain.commands import BeginRun, CompleteRun, FailRun, RecordResult
from inference_service.domain.models import Sampling, record_sampling
from inference_service.domain.state import decide, record_result, sampling_from_proto
from inference_service.worker.engines import EngineCache
from inference_service.worker.progress import ProgressBoard, RunTracker
from servicehost.clock import Clock, utc_now
from workbench.inference.v1 import inference_pb2 as pb

log = logging.getLogger(__name__)

TOKENS_GENERATED = Counter("wb_tokens_generated_total", "output tokens this worker generated", ["model"])


class RecordSource(Protocol):
    """Where a shard's records come from (the datasets service)."""

    def read_records(self, dataset_id: str, offset: int, limit: int) -> AsyncIterator[DatasetRecord]: ...


class Outcome(enum.Enum):
    ACK = "ack"  # done, or nothing left to do: remove it from the queue
    TERM = "term"  # can never succeed (the run failed): remove it without retrying


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

    async def process(self, shard: pb.RunShard, redelivered: bool) -> Outcome:
        """Generates and records the shard's results; returns whether to ack or terminate the message.

        Raises on failures worth retrying (engine died, datasets service away): the caller naks.
        """
        state = await self.runs.load(shard.run_id)
        if state.status is None:
            log.error("shard of unknown run %s dropped (no RunRequested on the log)", shard.run_id)
            return Outcome.TERM
        if state.finished:
            log.info("run %s is %s; shard at %d has nothing to do", shard.run_id, state.status, shard.offset)
            return Outcome.ACK
        try:
            engine = await self.engines.get(shard.model_id)
        except EngineLoadError as error:
            log.error("%s", error)
            await self.fail(shard.run_id, str(error))
            return Outcome.TERM
        spec = self.engines.spec(shard.model_id)
        begin = BeginRun(shard.run_id, self.worker_name, engine.name, spec.revision, self.clock())
        await self.runs.append(decide(state, begin))

        already = await self.runs.recorded(shard.run_id) if redelivered else {}
        try:
            await self._generate_all(engine, shard, already)
        except EngineUnavailable:
            await self.engines.discard(shard.model_id, engine)  # the next shard gets a fresh one
            raise
        # Completing before the ack: a worker that dies in between leaves the shard to be redone
        # (every record then skipped), never a run that has all its results but is not completed.
        await self.complete_if_done(shard.run_id)
        return Outcome.ACK

    async def _generate_all(self, engine: Engine, shard: pb.RunShard, already: dict[str, bool]) -> None:
        sampling = sampling_from_proto(shard.sampling)
        async with self.progress.track(shard) as tracker:
            tasks: list[asyncio.Task[PendingAppend]] = []
            skipped = 0
            try:
                async for record in self.records.read_records(shard.dataset_id, shard.offset, shard.limit):
                    if record.record_id in already:
                        skipped += 1
                        continue
                    tasks.append(asyncio.create_task(self._generate(engine, shard, sampling, record, tracker)))
                pending = await asyncio.gather(*tasks)
            except BaseException:
                for task in tasks:
                    task.cancel()
                raise
            if skipped:
                log.info(
                    "run %s shard at %d: %d records already recorded, skipped", shard.run_id, shard.offset, skipped
                )
            for item in pending:
                await item.confirm()

    async def complete_if_done(self, run_id: str) -> None:
        """Completes the run once the log holds a result for each of its records."""
        state = await self.runs.load(run_id)
        if state.finished or await self.runs.count_results(run_id) < state.total:
            return
        recorded = await self.runs.recorded(run_id)
        complete = CompleteRun(run_id, len(recorded), sum(recorded.values()), self.clock())
        if await self.runs.append(decide(state, complete)):
            log.info("run %s completed: %d results, %d failed", run_id, complete.done, complete.failed)

    async def fail(self, run_id: str, error: str) -> None:
        """Marks the run failed with a readable error (no-op when it has already finished)."""
        state = await self.runs.load(run_id)
        await self.runs.append(decide(state, FailRun(run_id, error, self.clock())))

    async def _generate(
        self, engine: Engine, shard: pb.RunShard, sampling: Sampling, record: DatasetRecord, tracker: RunTracker
    ) -> PendingAppend:
        began = time.monotonic()
        error = ""
        try:
            request_id = f"{shard.run_id}/{record.record_id}/{uuid.uuid4().hex[:8]}"
            own = record_sampling(sampling, shard.sampling_explicit, record.sampling)
            generation = await engine.generate(record.prompt, own, request_id)
        except RecordFailed as failure:
            # One bad record is data, not a reason to stop the shard.
            error = str(failure)
            generation = Generation(text="", finish_reason="error", prompt_tokens=0, output_tokens=0)
        result = RecordResult(
            run_id=shard.run_id,
            dataset_id=shard.dataset_id,
            model_id=shard.model_id,
            record_id=record.record_id,
            output_text=generation.text,
            finish_reason=generation.finish_reason,
            prompt_tokens=generation.prompt_tokens,
            output_tokens=generation.output_tokens,
            latency_ms=(time.monotonic() - began) * 1000,
            error=error,
            recorded_at=self.clock(),
        )
        pending = await self.runs.start_append(record_result(result))
        TOKENS_GENERATED.labels(shard.model_id).inc(generation.output_tokens)
        await tracker.record(bool(error), generation.output_tokens)
        return pending
