"""A small in-memory LRU of parsed pages of records.

A worker reads a dataset shard by shard (a few hundred records per ReadRecords call), and the
page browses a page at a time; without this, every call would fetch and parse its pages again.
"""

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from datasets_service.domain.records import Record

Records = tuple[Record, ...]


@dataclass(frozen=True, slots=True)
class CacheKey:
    object_name: str
    sha256: str


class PageCache:
    """Keeps parsed pages until their stored sizes add up to more than max_bytes.

    The most recently used page always stays, however large. Concurrent misses on one key share a
    single load.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[CacheKey, tuple[Records, int]] = OrderedDict()
        self._total = 0
        self._locks: dict[CacheKey, asyncio.Lock] = {}
        self.loads = 0  # how many times a loader ran (for tests and diagnostics)

    async def get(self, key: CacheKey, size: int, load: Callable[[], Awaitable[Records]]) -> Records:
        """The page's records under key; runs load() (once, however many callers wait) on a miss."""
        hit = self._hit(key)
        if hit is not None:
            return hit
        lock = self._locks.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                hit = self._hit(key)
                if hit is not None:
                    return hit
                self.loads += 1
                records = await load()
                self._store(key, records, size)
                return records
        finally:
            if not lock.locked():
                self._locks.pop(key, None)

    def peek(self, key: CacheKey) -> Records | None:
        """The page's records when they are in the cache, without loading them."""
        return self._hit(key)

    def _hit(self, key: CacheKey) -> Records | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry[0]

    def _store(self, key: CacheKey, records: Records, size: int) -> None:
        previous = self._entries.pop(key, None)
        self._total += size - (previous[1] if previous else 0)
        self._entries[key] = (records, size)
        while self._total > self.max_bytes and len(self._entries) > 1:
            _, (_, evicted_size) = self._entries.popitem(last=False)
            self._total -= evicted_size
