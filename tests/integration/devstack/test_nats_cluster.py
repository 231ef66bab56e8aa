"""Replication as configuration, on a real loopback cluster of three nats-servers (devstack.cluster):
streams are created with WB_STREAM_REPLICAS replicas; a stream whose replicas differ from the setting
is reported at start (log, OperationsService) and left as it is. And what only a cluster answers:
a message id still being stored by another publish (the event log's appends, the work queue's shards)."""

import asyncio
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import nats
import pytest
from nats.js import api

from datasets_service.adapters.object_store import DatasetFiles
from devstack.cluster import NatsCluster, stream_leader
from devstack.natsserver import NatsServer, free_port
from eventlog import JetStreamEventStore, NewEvent, StreamSettings
from inference_service.adapters.work_queue import WorkQueue
from servicehost.host import ServiceHost
from servicehost.settings import ServiceSettings
from workbench.common.v1 import operations_pb2, operations_pb2_grpc
from workbench.datasets.v1 import datasets_pb2 as ds
from workbench.datasets.v1 import datasets_pb2_grpc
from workbench.inference.v1 import inference_pb2 as pb


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    """A cluster of the test's own (it forms in about 3 s): the streams' subjects are the workbench's."""
    cluster = NatsCluster(tmp_path / "cluster").start()
    yield cluster
    cluster.stop()


def settings(cluster: NatsCluster, stream: str, replicas: int) -> ServiceSettings:
    return ServiceSettings.from_env(
        {
            "WB_NATS_URL": cluster.url,
            "WB_EVENT_STREAM": stream,
            "WB_STREAM_REPLICAS": str(replicas),
            "address": f"127.0.0.1:{free_port()}",
            "db_url": "sqlite://",
        }
    )


async def replicas_of(url: str, stream: str) -> int:
    events = await JetStreamEventStore.connect(url)
    try:
        return int((await events.js.stream_info(stream)).config.num_replicas or 1)
    finally:
        await events.close()


async def test_the_streams_and_the_object_store_are_created_with_the_replicas_the_setting_asks_for(
    cluster: NatsCluster,
) -> None:
    host = await ServiceHost.connect("datasets", settings(cluster, "R3_EVENTS", replicas=3))
    try:
        queue = WorkQueue(host.nats, stream="R3_WORK")
        await queue.ensure_stream(replicas=3)
        files = await DatasetFiles.open(host.nats.jetstream(), bucket="r3-files", replicas=3)
        await host.check_replicas(queue.stream, files.stream)

        assert host.storage_warnings == []
        for stream in ("R3_EVENTS", "R3_WORK", "OBJ_r3-files"):
            assert await replicas_of(cluster.url, stream) == 3
        assert await stream_leader(cluster.url, "R3_EVENTS") in cluster.servers
    finally:
        await host.stop()


async def test_a_stream_with_other_replicas_is_reported_at_start_and_left_as_it_is(
    cluster: NatsCluster, caplog: pytest.LogCaptureFixture
) -> None:
    events = await JetStreamEventStore.connect(cluster.url)
    await events.js.add_stream(api.StreamConfig(name="R1_EVENTS", subjects=["wb.>"], num_replicas=1))
    await events.close()

    with caplog.at_level(logging.WARNING):
        host = await ServiceHost.connect("annotations", settings(cluster, "R1_EVENTS", replicas=3))
    try:
        await host.start(datasets_pb2_grpc.DatasetServiceServicer())  # any service: OperationsService comes along
        assert isinstance(host.settings, ServiceSettings)
        async with grpc.aio.insecure_channel(host.settings.address) as channel:
            status = await operations_pb2_grpc.OperationsServiceStub(channel).GetStatus(
                operations_pb2.GetStatusRequest()
            )
    finally:
        await host.stop()

    expected = (
        "stream R1_EVENTS has 1 replicas where WB_STREAM_REPLICAS asks for 3: "
        "change the stream (nats stream edit R1_EVENTS --replicas 3) or the setting"
    )
    assert list(status.storage_warnings) == [expected]
    assert f"annotations: {expected}" in caplog.messages
    assert await replicas_of(cluster.url, "R1_EVENTS") == 1


async def test_a_single_server_that_fsyncs_every_write_takes_appends(tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "nats", sync="always").start()
    try:
        assert "sync_interval: always" in (tmp_path / "nats" / "nats-server.conf").read_text()
        events = await JetStreamEventStore.connect(server.url, stream="SYNCED")
        await events.ensure_stream()
        await events.js.publish("wb.datasets.d1", b"x")
        assert await events.last_sequence() == 1
        await events.close()
    finally:
        server.stop()


async def test_appends_of_one_message_id_at_once_are_both_confirmed_as_one_event(cluster: NatsCluster) -> None:
    # Two shards of a run starting together both append its RunStarted: on a cluster the second is
    # answered "duplicate message id is in process" while the first is being stored.
    events = await JetStreamEventStore.connect(cluster.url)
    events.ack_timeout = 5.0
    try:
        await events.ensure_stream(StreamSettings(replicas=3))
        same = [NewEvent("wb.datasets.d1", ds.DatasetDeleted(dataset_id="d1"), msg_id="d1:deleted") for _ in range(4)]

        began = time.monotonic()
        batched = await events.append_many(same)
        pending = [await events.start_append(new) for new in same]
        confirmed = [await item.confirm() for item in pending]

        assert batched == confirmed == [1, 1, 1, 1]
        assert time.monotonic() - began < 2.0  # not a wait for the ack timeout
        assert await events.last_sequence() == 1
    finally:
        await events.close()


async def test_replicas_a_single_server_cannot_hold_stop_the_start_in_the_settings_words(tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "nats").start()
    try:
        single = ServiceSettings.from_env(
            {"WB_NATS_URL": server.url, "WB_STREAM_REPLICAS": "3", "address": "127.0.0.1:0", "db_url": "sqlite://"}
        )
        with pytest.raises(
            RuntimeError, match=r"WB_STREAM_REPLICAS=3 needs a NATS cluster, but nats://127\.0\.0\.1:\d+ is one server"
        ):
            await ServiceHost.connect("datasets", single)
    finally:
        server.stop()


ROUNDS = 20  # the race is won or lost anew each round (about one round in three hit it here)


async def test_shards_published_twice_at_once_are_queued_once(cluster: NatsCluster) -> None:
    # StartRun and the reconciler may enqueue the same shards together: on a cluster one of them is
    # answered "duplicate message id is in process" for some shards while the other stores them.
    first, second = [await nats.connect(cluster.url.split(",")) for _ in range(2)]
    try:
        queues = [WorkQueue(nc, publish_timeout_s=5.0) for nc in (first, second)]
        await queues[0].ensure_stream(replicas=3)
        await stream_leader(cluster.url, "WB_WORK")
        for round_number in range(ROUNDS):
            shards = [
                pb.RunShard(run_id=f"run{round_number}", model_id="m", offset=i * 10, limit=10) for i in range(50)
            ]

            began = time.monotonic()
            await asyncio.gather(*(queue.publish(shards) for queue in queues))

            assert time.monotonic() - began < 2.0  # not a wait for the publish timeout
        info = await queues[0].js.stream_info("WB_WORK")
        assert info.state.messages == ROUNDS * 50
    finally:
        await first.close()
        await second.close()
