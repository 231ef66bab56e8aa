"""Live counts: after a dataset's results or marks change, the open sockets get its new stats.

At most one GetStats per dataset per `every_s`: a run recording hundreds of results a second
costs one call a second, and nothing is asked while no socket is open. The counts come from the
annotations service's read models, which may not have applied the latest changes yet when they are
asked: when changes came while a frame was waiting, one more frame follows a period later, so the
last frame after a burst is asked at least a period after its last change.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable

import msgspec

from gateway.curation import StatsView
from gateway.live import Frame, LiveHub

log = logging.getLogger(__name__)

EVERY_S = 1.0

FetchStats = Callable[[str], Awaitable[StatsView]]


class StatsFeed:
    """Sends {"type": "stats", "dataset_id", "stats": {...}} frames, debounced per dataset."""

    def __init__(self, hub: LiveHub, fetch: FetchStats, every_s: float = EVERY_S) -> None:
        self.hub = hub
        self.fetch = fetch
        self.every_s = every_s
        self._pending: dict[str, asyncio.Task[None]] = {}
        self._again: set[str] = set()  # datasets that changed again while their frame was waiting

    def changed(self, dataset_id: str) -> None:
        """The dataset's counts may have moved; sends them within every_s (once, however many changes)."""
        if not dataset_id or not self.hub.clients:
            return
        if dataset_id in self._pending:
            self._again.add(dataset_id)
            return
        self._pending[dataset_id] = asyncio.create_task(self._send(dataset_id), name=f"stats {dataset_id}")

    async def close(self) -> None:
        for task in list(self._pending.values()):
            task.cancel()
        await asyncio.gather(*self._pending.values(), return_exceptions=True)

    async def _send(self, dataset_id: str) -> None:
        try:
            await asyncio.sleep(self.every_s)
            del self._pending[dataset_id]  # a change from now on schedules the next frame
            again = dataset_id in self._again
            self._again.discard(dataset_id)
            stats = await self.fetch(dataset_id)
        except asyncio.CancelledError:
            raise
        except Exception:  # counts are a courtesy: the page refetches them when it loads
            self._pending.pop(dataset_id, None)
            log.debug("could not fetch the stats of %s", dataset_id, exc_info=True)
            return
        payload = {"type": "stats", "dataset_id": dataset_id, "stats": stats}
        self.hub.broadcast(Frame(msgspec.json.encode(payload).decode()))
        if again:  # those later changes may not be in these counts yet
            self.changed(dataset_id)
