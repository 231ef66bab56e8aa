"""The page cache: a page read by many shards is loaded once; old pages make room for new ones."""

import asyncio

import pytest

from datasets_service.adapters.page_cache import CacheKey, PageCache
from datasets_service.domain.records import Record


def page(prompt: str) -> tuple[Record, ...]:
    return (Record("line-1", 0, prompt=prompt),)


async def test_concurrent_readers_of_one_page_share_one_load() -> None:
    cache = PageCache(max_bytes=1000)
    release = asyncio.Event()

    async def load() -> tuple[Record, ...]:
        await release.wait()
        return page("a")

    readers = [asyncio.create_task(cache.get(CacheKey("ds_a.p00000", "sha"), 10, load)) for _ in range(5)]
    await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(*readers)

    assert cache.loads == 1
    assert all(result is results[0] for result in results)


async def test_the_least_recently_used_page_is_evicted_first_and_the_latest_always_stays() -> None:
    cache = PageCache(max_bytes=100)

    async def load_a() -> tuple[Record, ...]:
        return page("a")

    async def load_b() -> tuple[Record, ...]:
        return page("b")

    async def load_c() -> tuple[Record, ...]:
        return page("c")

    await cache.get(CacheKey("a", "1"), 40, load_a)
    await cache.get(CacheKey("b", "1"), 40, load_b)
    await cache.get(CacheKey("a", "1"), 40, load_a)  # a is now the most recently used
    await cache.get(CacheKey("c", "1"), 40, load_c)  # 120 bytes: b goes
    assert cache.loads == 3

    await cache.get(CacheKey("a", "1"), 40, load_a)
    assert cache.loads == 3
    await cache.get(CacheKey("b", "1"), 40, load_b)
    assert cache.loads == 4

    await cache.get(CacheKey("big", "1"), 500, load_c)  # larger than the cache, yet kept
    await cache.get(CacheKey("big", "1"), 500, load_c)
    assert cache.loads == 5
    await cache.get(CacheKey("a", "1"), 40, load_a)  # the big one goes at once
    await cache.get(CacheKey("big", "1"), 500, load_c)
    assert cache.loads == 7


async def test_a_page_changed_in_place_is_another_key() -> None:
    cache = PageCache(max_bytes=100)

    async def load_a() -> tuple[Record, ...]:
        return page("a")

    await cache.get(CacheKey("p", "sha-1"), 10, load_a)
    await cache.get(CacheKey("p", "sha-2"), 10, load_a)

    assert cache.loads == 2


async def test_a_failed_load_is_not_cached() -> None:
    cache = PageCache(max_bytes=100)
    attempts = 0

    async def flaky() -> tuple[Record, ...]:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise ConnectionError("object store unreachable")
        return page("a")

    key = CacheKey("a", "1")
    with pytest.raises(ConnectionError):
        await cache.get(key, 10, flaky)
    assert (await cache.get(key, 10, flaky))[0].prompt == "a"
    assert attempts == 2
