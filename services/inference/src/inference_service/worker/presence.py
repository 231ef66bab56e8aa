"""A worker tells what it serves and in what state (events on the log) and that it is alive (heartbeats).

States per model: LOADING while its engine loads, READY when loaded and idle, BUSY while shards are
in work; GONE for every model when the worker stops. Telling is a courtesy: a lost event or beat
must never stop the worker from working, so failures are logged, not raised.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from eventlog import EventStore, NewEvent
from eventlog.tasks import cancel_and_wait, raise_if_cancelling
from inference_service.domain.workers import announced, heartbeat_subject, state_changed
from servicehost.clock import Clock, utc_now
from workbench.inference.v1 import inference_pb2 as pb

log = logging.getLogger(__name__)

HEARTBEAT_EVERY_S = 5.0  # the API takes a worker unheard of for 20 s for gone

PublishBeat = Callable[[str, bytes], Awaitable[None]]


class Presence:
    """One worker's announcements and heartbeats."""

    def __init__(
        self,
        store: EventStore,
        publish: PublishBeat,
        worker: str,
        model_ids: Sequence[str],
        clock: Clock = utc_now,
        heartbeat_every_s: float = HEARTBEAT_EVERY_S,
    ) -> None:
        self.store = store
        self.publish = publish
        self.worker = worker
        self.model_ids = list(model_ids)
        self.clock = clock
        self.heartbeat_every_s = heartbeat_every_s
        self._busy: dict[str, int] = {}
        self._failed: set[str] = set()  # models whose engine could not load: GONE, with the reason
        self._beating: asyncio.Task[None] | None = None

    async def announce(self) -> None:
        """Says which models this worker serves and starts the heartbeats."""
        await self._append(announced(self.worker, self.model_ids, self.clock()))
        self._beating = asyncio.create_task(self._beat(), name="heartbeats")

    async def loading(self, model_id: str) -> None:
        await self._state(model_id, pb.WORKER_STATE_LOADING)

    async def loaded(self, model_id: str, error: str = "") -> None:
        """The engine is up (READY), or could not load (GONE for that model, with the reason)."""
        if error:
            self._failed.add(model_id)
            await self._state(model_id, pb.WORKER_STATE_GONE, f"could not load: {error}")
        else:
            self._failed.discard(model_id)
            await self._state(model_id, pb.WORKER_STATE_BUSY if self._busy.get(model_id) else pb.WORKER_STATE_READY)

    async def shard_started(self, model_id: str) -> None:
        self._busy[model_id] = self._busy.get(model_id, 0) + 1
        if self._busy[model_id] == 1 and model_id not in self._failed:
            await self._state(model_id, pb.WORKER_STATE_BUSY)

    async def shard_ended(self, model_id: str) -> None:
        """READY again when the last shard ends, unless the model could not load (it stays GONE)."""
        self._busy[model_id] = max(self._busy.get(model_id, 0) - 1, 0)
        if self._busy[model_id] == 0 and model_id not in self._failed:
            await self._state(model_id, pb.WORKER_STATE_READY)

    async def gone(self) -> None:
        """The worker stops: every model GONE, no more heartbeats."""
        if self._beating is not None:
            await cancel_and_wait(self._beating)
        await self._state("", pb.WORKER_STATE_GONE, "stopped")

    async def _state(self, model_id: str, state: int, detail: str = "") -> None:
        await self._append(state_changed(self.worker, model_id, state, self.clock(), detail))

    async def _append(self, new: NewEvent) -> None:
        try:
            await self.store.append_many([new])
        except Exception:
            log.warning("could not tell the log of this worker's state", exc_info=True)

    async def _beat(self) -> None:
        beat = pb.WorkerHeartbeat(worker=self.worker, model_ids=self.model_ids).SerializeToString()
        while True:
            try:
                await self.publish(heartbeat_subject(self.worker), beat)
            except Exception:
                raise_if_cancelling()
                log.debug("a heartbeat was not sent", exc_info=True)
            await asyncio.sleep(self.heartbeat_every_s)
