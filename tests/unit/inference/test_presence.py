"""A worker's presence: the states it tells of its models, and its heartbeats."""

import asyncio
from datetime import UTC, datetime

from eventlog import InMemoryEventStore
from inference_service.worker.presence import Presence
from workbench.inference.v1 import inference_pb2 as pb

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


async def states(store: InMemoryEventStore) -> list[tuple[str, int, str]]:
    events = [stored.event for stored in await store.read("wb.workers.>")]
    return [(e.model_id, e.state, e.detail) for e in events if isinstance(e, pb.WorkerStateChanged)]


def presence(store: InMemoryEventStore, beats: list[tuple[str, bytes]]) -> Presence:
    async def publish(subject: str, data: bytes) -> None:
        beats.append((subject, data))

    return Presence(store, publish, "w1", ["tiny-a", "tiny-b"], clock=lambda: NOW, heartbeat_every_s=3600)


async def test_a_model_goes_loading_ready_busy_and_ready_and_the_worker_gone_when_it_stops() -> None:
    store, beats = InMemoryEventStore(), []
    worker = presence(store, beats)

    await worker.announce()
    await asyncio.sleep(0)  # the first heartbeat goes out
    await worker.shard_started("tiny-a")
    await worker.loading("tiny-a")
    await worker.loaded("tiny-a")
    await worker.shard_ended("tiny-a")
    await worker.gone()

    announced = (await store.read("wb.workers.>"))[0].event
    assert isinstance(announced, pb.WorkerAnnounced) and list(announced.model_ids) == ["tiny-a", "tiny-b"]
    assert await states(store) == [
        ("tiny-a", pb.WORKER_STATE_BUSY, ""),
        ("tiny-a", pb.WORKER_STATE_LOADING, ""),
        ("tiny-a", pb.WORKER_STATE_BUSY, ""),  # loaded while a shard waits for it
        ("tiny-a", pb.WORKER_STATE_READY, ""),
        ("", pb.WORKER_STATE_GONE, "stopped"),
    ]
    assert beats and beats[0][0] == "wb.heartbeats.w1"


async def test_a_model_that_could_not_load_stays_gone_after_its_shard_ends_until_it_loads() -> None:
    store, beats = InMemoryEventStore(), []
    worker = presence(store, beats)
    await worker.announce()

    await worker.shard_started("tiny-b")
    await worker.loading("tiny-b")
    await worker.loaded("tiny-b", error="config.json is not JSON")
    await worker.shard_ended("tiny-b")
    await worker.shard_started("tiny-b")  # the next run of it tries again
    await worker.loading("tiny-b")
    await worker.loaded("tiny-b")

    assert await states(store) == [
        ("tiny-b", pb.WORKER_STATE_BUSY, ""),
        ("tiny-b", pb.WORKER_STATE_LOADING, ""),
        ("tiny-b", pb.WORKER_STATE_GONE, "could not load: config.json is not JSON"),
        ("tiny-b", pb.WORKER_STATE_LOADING, ""),
        ("tiny-b", pb.WORKER_STATE_BUSY, ""),
    ]
    await worker.gone()
