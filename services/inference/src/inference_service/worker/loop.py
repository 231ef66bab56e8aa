"""The worker's loop: pull shards of the served models, keep them alive, ack, nak or terminate them.

Per model, up to max_shards shards are in flight, so the engine always has the next shard's prompts
queued when one shard ends. On stop: no new pulls; shards in flight get drain_s seconds to finish,
then are handed back (nak) for another worker, and the engines are shut down.
"""

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from prometheus_client import Gauge

from eventlog.tasks import cancel_and_wait, raise_if_cancelling
from inference_service.adapters.work_queue import WorkQueue
from inference_service.domain.errors import NotFound
from inference_service.worker.engines import EngineCache
from inference_service.worker.shard import Outcome, ShardJob
from workbench.inference.v1 import inference_pb2 as pb

log = logging.getLogger(__name__)

KEEP_ALIVE_S = 10.0  # at most; always a third of AckWait or less, so a long shard is never taken for a dead worker's
FETCH_WAIT_S = 5.0  # how long one pull request waits at the server for a shard
RETRY_DELAY_S = 5.0  # a shard that failed for a passing reason comes back after this
GIVE_UP_DELIVERIES = 2

SHARDS_IN_FLIGHT = Gauge("wb_shards_in_flight", "shards this worker is working on", ["model"])


@dataclass
class Worker:
    """Pulls shards of its models from the work queue and has the shard job work on them."""

    models: Sequence[str]
    queue: WorkQueue
    job: ShardJob
    engines: EngineCache
    max_shards: int
    ack_wait_s: float
    max_deliver: int
    drain_s: float = 3.0
    retry_delay_s: float = RETRY_DELAY_S
    _in_flight: set[asyncio.Task[None]] = field(default_factory=set, init=False)

    def __post_init__(self) -> None:
        self.keep_alive_s = keep_alive_period(self.ack_wait_s)

    async def run(self, stop: asyncio.Event) -> None:
        """Works until stop is set (or the task is cancelled), then drains and shuts the engines down."""
        # Two deliveries more than attempts: a shard whose worker was killed on its last attempt comes
        # back once more, to be given up (its records recorded as failed), so its run still ends.
        subscriptions = [
            await self.queue.subscribe(model_id, self.ack_wait_s, self.max_deliver + GIVE_UP_DELIVERIES)
            for model_id in self.models
        ]
        log.info("worker pulling shards of %s", ", ".join(self.models))  # devstack waits for this line
        pullers = [asyncio.create_task(self._pull(sub, stop)) for sub in subscriptions]
        try:
            await stop.wait()
        finally:
            await cancel_and_wait(*pullers)
            for subscription in subscriptions:
                with contextlib.suppress(Exception):  # the connection may already be gone
                    await subscription.unsubscribe()
            await self._drain()
            await self.engines.shutdown()

    async def _pull(self, subscription: JetStreamContext.PullSubscription, stop: asyncio.Event) -> None:
        slots = asyncio.Semaphore(self.max_shards)
        while not stop.is_set():
            await slots.acquire()
            try:
                messages = await subscription.fetch(1, timeout=FETCH_WAIT_S)
            except (TimeoutError, nats.errors.TimeoutError):
                slots.release()
                continue
            except Exception:
                slots.release()
                raise_if_cancelling()
                log.exception("pulling a shard failed; retrying")
                await asyncio.sleep(RETRY_DELAY_S)
                continue
            for msg in messages:
                task = asyncio.create_task(self._settle(msg))
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)
                task.add_done_callback(lambda _: slots.release())

    async def _drain(self) -> None:
        if not self._in_flight:
            return
        log.info("waiting up to %.1f s for %d shards in flight", self.drain_s, len(self._in_flight))
        _, unfinished = await asyncio.wait(self._in_flight, timeout=self.drain_s)
        await cancel_and_wait(*unfinished)

    async def _settle(self, msg: Msg) -> None:
        try:
            await self._handle(msg)
        except asyncio.CancelledError:
            raise
        except Exception:  # e.g. NATS gone while acking: the shard comes back after AckWait
            log.exception("a shard could not be settled")

    async def _handle(self, msg: Msg) -> None:
        shard = pb.RunShard.FromString(msg.data)
        deliveries = msg.metadata.num_delivered or 1
        where = f"run {shard.run_id} records {shard.offset}..{shard.offset + shard.limit - 1}"
        log.info("shard of %s (delivery %d)", where, deliveries)
        if deliveries > self.max_deliver:  # the worker of its last attempt stopped before settling it
            attempts = f"given up after {self.max_deliver} attempts (WB_WORKER_MAX_DELIVER)"
            reason = f"{attempts}; the worker of the last one stopped before it finished"
            await self.job.give_up(shard, reason)
            await msg.term()
            return
        keep_alive = asyncio.create_task(_keep_alive(msg, self.keep_alive_s))
        in_flight = SHARDS_IN_FLIGHT.labels(shard.model_id)
        in_flight.inc()
        try:
            outcome = await self.job.process(shard, redelivered=deliveries > 1)
        except asyncio.CancelledError:
            await _hand_back(msg)  # now, instead of after AckWait
            raise
        except NotFound as error:
            await self.job.fail(shard.run_id, str(error))
            await msg.term()
            return
        except Exception as error:  # passing trouble, e.g. an append not confirmed in time (TimeoutError)
            await self._retry_or_give_up(msg, shard, where, deliveries, error)
            return
        finally:
            keep_alive.cancel()
            in_flight.dec()
        if outcome is Outcome.TERM:
            await msg.term()
            return
        await msg.ack_sync()

    async def _retry_or_give_up(
        self, msg: Msg, shard: pb.RunShard, where: str, deliveries: int, error: Exception
    ) -> None:
        if deliveries >= self.max_deliver:
            # No delivery is left: the shard's records without a result are recorded as failed, so
            # the run still ends (completed with failures counted, or failed when nothing ran).
            log.error("giving up on %s after %d deliveries: %s", where, deliveries, error)
            reason = f"given up after {deliveries} attempts (WB_WORKER_MAX_DELIVER); last error: {error}"
            await self.job.give_up(shard, reason)
            await msg.term()
            return
        log.warning("%s failed (delivery %d), will retry: %s", where, deliveries, error, exc_info=True)
        await msg.nak(delay=self.retry_delay_s)


def keep_alive_period(ack_wait_s: float) -> float:
    """How often a shard in work is reported in progress: a third of AckWait, at most KEEP_ALIVE_S.

    Three chances per AckWait, so one late or lost in_progress() does not hand the shard to another worker.
    """
    if ack_wait_s <= 0:
        raise ValueError(f"AckWait must be positive, got {ack_wait_s} s; set WB_WORKER_ACK_WAIT_S to 1 or more")
    return min(KEEP_ALIVE_S, ack_wait_s / 3)


async def _keep_alive(msg: Msg, period_s: float) -> None:
    while True:
        await asyncio.sleep(period_s)
        try:
            await msg.in_progress()
        except Exception:
            log.warning("could not extend a shard's AckWait", exc_info=True)


async def _hand_back(msg: Msg) -> None:
    try:
        await msg.nak()
    except Exception:  # the connection may be closing; AckWait brings the shard back anyway
        log.debug("nak failed", exc_info=True)
