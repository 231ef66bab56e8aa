"""Live progress of the runs a worker works on, as RunProgress on core NATS (wb.progress.<run_id>).

Not stored: the read model derives exact numbers from the results. Here `done` is the count of
results on the log (every worker's), while speed and ETA are this worker's pace.
"""

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from inference_service.domain.progress import rates
from workbench.inference.v1 import inference_pb2 as pb

log = logging.getLogger(__name__)

Publish = Callable[[pb.RunProgress], Awaitable[None]]
CountResults = Callable[[str], Awaitable[int]]


class RunTracker:
    """One run's live numbers in this worker; publishes at most every `interval` seconds."""

    def __init__(
        self,
        shard: pb.RunShard,
        publish: Publish,
        count_results: CountResults,
        interval: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.run_id = shard.run_id
        self.dataset_id = shard.dataset_id
        self.model_id = shard.model_id
        self.total = shard.run_total
        self.publish = publish
        self.count_results = count_results
        self.interval = interval
        self.clock = clock
        self.started = clock()
        self.last_published = float("-inf")
        self.done_here = 0
        self.failed_here = 0
        self.tokens_here = 0
        self.users = 0

    async def record(self, failed: bool, output_tokens: int) -> None:
        self.done_here += 1
        self.failed_here += 1 if failed else 0
        self.tokens_here += output_tokens
        if self.clock() - self.last_published >= self.interval:
            await self.flush()

    async def flush(self) -> None:
        self.last_published = self.clock()
        done = await self.count_results(self.run_id)
        pace = rates(
            self.done_here, self.done_here + max(self.total - done, 0), self.tokens_here, self.clock() - self.started
        )
        await self.publish(
            pb.RunProgress(
                run_id=self.run_id,
                dataset_id=self.dataset_id,
                model_id=self.model_id,
                done=done,
                total=self.total,
                failed=self.failed_here,
                tokens_per_second=pace.tokens_per_second,
                eta_seconds=pace.eta_seconds,
            )
        )


class ProgressBoard:
    """The trackers of the runs in flight; shards of one run share a tracker."""

    def __init__(self, publish: Publish, count_results: CountResults, interval: float = 0.5) -> None:
        self.publish = publish
        self.count_results = count_results
        self.interval = interval
        self._trackers: dict[str, RunTracker] = {}

    @asynccontextmanager
    async def track(self, shard: pb.RunShard) -> AsyncIterator[RunTracker]:
        """The run's tracker while a shard is worked on; a final snapshot goes out when it ends."""
        tracker = self._trackers.setdefault(
            shard.run_id, RunTracker(shard, self.publish, self.count_results, self.interval)
        )
        tracker.users += 1
        try:
            yield tracker
        finally:
            tracker.users -= 1
            if tracker.users == 0:
                del self._trackers[shard.run_id]
            try:
                await tracker.flush()
            except Exception:  # progress is a courtesy; it must not hide the shard's own outcome
                log.warning("could not publish the progress of %s", shard.run_id, exc_info=True)
