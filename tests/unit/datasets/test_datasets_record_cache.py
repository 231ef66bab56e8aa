"""The parsed-file cache: a dataset read shard by shard is loaded once; old ones make room for new ones."""

import asyncio

import pytest

from datasets_service.adapters.record_cache import CacheKey, RecordCache
from datasets_service.domain.records import ParsedDataset, Record
from workbench.datasets.v1.datasets_pb2 import RecordFormat


def parsed(prompt: str) -> ParsedDataset:
    return ParsedDataset((Record("line-1", 0, prompt=prompt),), RecordFormat.RECORD_FORMAT_PROMPT)


async def test_concurrent_readers_of_one_dataset_share_one_load() -> None:
    cache = RecordCache(max_bytes=1000)
    release = asyncio.Event()

    async def load() -> ParsedDataset:
        await release.wait()
        return parsed("a")

    readers = [asyncio.create_task(cache.get(CacheKey("ds_a", "sha"), 10, load)) for _ in range(5)]
    await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(*readers)

    assert cache.loads == 1
    assert all(result is results[0] for result in results)


async def test_the_least_recently_used_dataset_is_evicted_first_and_the_latest_always_stays() -> None:
    cache = RecordCache(max_bytes=100)

    async def load_a() -> ParsedDataset:
        return parsed("a")

    async def load_b() -> ParsedDataset:
        return parsed("b")

    async def load_c() -> ParsedDataset:
        return parsed("c")

    await cache.get(CacheKey("ds_a", "1"), 40, load_a)
    await cache.get(CacheKey("ds_b", "1"), 40, load_b)
    await cache.get(CacheKey("ds_a", "1"), 40, load_a)  # a is now the most recently used
    await cache.get(CacheKey("ds_c", "1"), 40, load_c)  # 120 bytes: b goes
    assert cache.loads == 3

    await cache.get(CacheKey("ds_a", "1"), 40, load_a)
    assert cache.loads == 3
    await cache.get(CacheKey("ds_b", "1"), 40, load_b)
    assert cache.loads == 4

    await cache.get(CacheKey("ds_big", "1"), 500, load_c)  # larger than the cache, yet kept
    await cache.get(CacheKey("ds_big", "1"), 500, load_c)
    assert cache.loads == 5


async def test_a_failed_load_is_not_cached() -> None:
    cache = RecordCache(max_bytes=100)
    attempts = 0

    async def flaky() -> ParsedDataset:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise ConnectionError("object store unreachable")
        return parsed("a")

    key = CacheKey("ds_a", "1")
    with pytest.raises(ConnectionError):
        await cache.get(key, 10, flaky)
    assert (await cache.get(key, 10, flaky)).records[0].prompt == "a"
    assert attempts == 2
