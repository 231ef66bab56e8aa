"""A small in-memory LRU of parsed dataset files.

A worker reads a dataset shard by shard (a few hundred records per ReadRecords call); without
this, every shard would download and parse the whole file again.
"""

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from datasets_service.domain.records import ParsedDataset


@dataclass(frozen=True, slots=True)
class CacheKey:
    dataset_id: str
    sha256: str


class RecordCache:
    """Keeps parsed datasets until their file sizes add up to more than max_bytes.

    The most recently used dataset always stays, however large. Concurrent misses on one key
    share a single load.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[CacheKey, tuple[ParsedDataset, int]] = OrderedDict()
        self._locks: dict[CacheKey, asyncio.Lock] = {}
        self.loads = 0  # how many times a loader ran (for tests and diagnostics)

    async def get(self, key: CacheKey, size: int, load: Callable[[], Awaitable[ParsedDataset]]) -> ParsedDataset:
        """The parsed dataset under key; runs load() (once, however many callers wait) on a miss."""
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
                parsed = await load()
                self._store(key, parsed, size)
                return parsed
        finally:
            if not lock.locked():
                self._locks.pop(key, None)

    def put(self, key: CacheKey, parsed: ParsedDataset, size: int) -> None:
        """Adds a dataset parsed elsewhere (an upload has just parsed its file)."""
        self._store(key, parsed, size)

    def _hit(self, key: CacheKey) -> ParsedDataset | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry[0]

    def _store(self, key: CacheKey, parsed: ParsedDataset, size: int) -> None:
        self._entries[key] = (parsed, size)
        total = sum(entry_size for _, entry_size in self._entries.values())
        while total > self.max_bytes and len(self._entries) > 1:
            _, (_, evicted_size) = self._entries.popitem(last=False)
            total -= evicted_size
