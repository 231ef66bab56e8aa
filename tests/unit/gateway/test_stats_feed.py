"""Live counts on the WebSocket: one GetStats per dataset however many changes, none without sockets."""

import asyncio
import json

from gateway.curation import CountsView, StatsView
from gateway.live import LiveHub
from gateway.stats_feed import StatsFeed


def stats(golden: int) -> StatsView:
    return StatsView(
        total=3,
        golden=golden,
        fixed=0,
        wrong=0,
        needs_review=1,
        differing=2,
        by_model={"m1": CountsView(3, golden, 0, 0, 1, 2)},
    )


async def test_a_burst_of_changes_becomes_one_frame_and_one_more_a_period_later() -> None:
    hub = LiveHub()
    socket = hub.subscribe()
    asked: list[str] = []

    async def fetch(dataset_id: str) -> StatsView:
        asked.append(dataset_id)
        return stats(golden=len(asked))

    feed = StatsFeed(hub, fetch, every_s=0.05)
    for _ in range(20):  # a burst of results and marks
        feed.changed("ds-1")
    feed.changed("ds-2")  # one change alone
    frames = [json.loads(await asyncio.wait_for(socket.get(), 2)) for _ in range(3)]  # type: ignore[arg-type]

    # ds-1's changes after its first was scheduled may not be in the first counts: a second frame follows.
    assert sorted(asked) == ["ds-1", "ds-1", "ds-2"]
    assert [frame["dataset_id"] for frame in frames].count("ds-1") == 2
    first = next(frame for frame in frames if frame["dataset_id"] == "ds-1")
    assert first["type"] == "stats" and first["stats"]["needs_review"] == 1
    assert first["stats"]["by_model"]["m1"]["differing"] == 2
    await asyncio.sleep(0.2)
    assert len(asked) == 3 and len(socket) == 0  # then quiet: nothing more is asked
    feed.changed("ds-1")  # a later change: a new frame
    later = json.loads(await asyncio.wait_for(socket.get(), 2))  # type: ignore[arg-type]
    assert later["dataset_id"] == "ds-1" and len(asked) == 4
    await feed.close()


async def test_nothing_is_asked_while_no_socket_is_open_or_when_the_service_fails() -> None:
    hub = LiveHub()
    asked: list[str] = []

    async def fetch(dataset_id: str) -> StatsView:
        asked.append(dataset_id)
        raise RuntimeError("annotations service away")

    feed = StatsFeed(hub, fetch, every_s=0.01)
    feed.changed("ds-1")
    await asyncio.sleep(0.05)
    assert asked == []

    socket = hub.subscribe()
    feed.changed("ds-1")
    await asyncio.sleep(0.05)
    assert asked == ["ds-1"] and len(socket) == 0  # a failed fetch sends nothing, and breaks nothing
    feed.changed("ds-1")
    await asyncio.sleep(0.05)
    assert asked == ["ds-1", "ds-1"]
    await feed.close()
