"""The NATS users of the Kubernetes manifests, on a real nats-server started with their nats.conf:
the workbench's processes get in with their passwords, the read-only user reads results and nothing else."""

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from devstack.natsserver import free_port, nats_server_binary
from eventlog import JetStreamEventStore, NewEvent
from workbench.datasets.v1 import datasets_pb2 as ds
from workbench.inference.v1 import inference_pb2 as inf

REPO = Path(__file__).resolve().parents[3]
CONF = REPO / "deploy" / "base" / "nats" / "nats.conf"
# Hex, as docs/deploy.md has them made; one starts with digits (nats.conf must still read it as text).
PASSWORDS = {
    "NATS_SERVICES_PASSWORD": "0123abcd" * 4,
    "NATS_WORKERS_PASSWORD": "workers-pw",
    "NATS_GATEWAY_PASSWORD": "gateway-pw",
    "NATS_RESULTS_READER_PASSWORD": "reader-pw",
}
sys.path.insert(0, str(REPO / "examples"))
from subscribe_results import INBOX_PREFIX  # noqa: E402  (the example's prefix is what nats.conf allows)


def local_config(folder: Path, port: int, monitor: int) -> Path:
    """nats.conf as the pods have it, but with this machine's ports and folders (cluster.conf beside it)."""
    text = CONF.read_text()
    for cluster_value, local_value in [
        ("port: 4222", f"port: {port}"),
        ("http_port: 8222", f"http_port: {monitor}"),
        ("store_dir: /data", f'store_dir: "{folder / "store"}"'),
        ('pid_file: "/var/run/nats/nats.pid"', f'pid_file: "{folder / "nats.pid"}"'),
    ]:
        assert cluster_value in text, f"deploy/base/nats/nats.conf no longer says {cluster_value}: update this test"
        text = text.replace(cluster_value, local_value)
    (folder / "cluster.conf").write_text((CONF.parent / "cluster.conf").read_text())
    conf = folder / "nats.conf"
    conf.write_text(text)
    return conf


@pytest.fixture(scope="module")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("nats-users")
    port = free_port()
    conf = local_config(folder, port, free_port())
    with open(folder / "nats-server.log", "wb") as log:
        env = {**os.environ, "POD_NAME": "nats-0", **PASSWORDS}
        server = subprocess.Popen(
            [nats_server_binary(), "-a", "127.0.0.1", "-c", str(conf)], env=env, stdout=log, stderr=log
        )
    deadline = time.monotonic() + 15
    while not (folder / "nats.pid").exists():
        assert server.poll() is None, f"nats-server refused nats.conf: {(folder / 'nats-server.log').read_text()}"
        assert time.monotonic() < deadline, "nats-server did not start within 15 s"
        time.sleep(0.05)
    yield f"nats://127.0.0.1:{port}"
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture(scope="module")
async def stored(nats_url: str) -> AsyncIterator[None]:
    """A result and a dataset event, appended as the services' user."""
    events = await JetStreamEventStore.connect(nats_url, user="services", password=PASSWORDS["NATS_SERVICES_PASSWORD"])
    await events.ensure_stream()
    await events.append(
        NewEvent("wb.results.run-1", inf.ResultRecorded(run_id="run-1", record_id="r1", output_text="hi"))
    )
    await events.append(NewEvent("wb.datasets.d1", ds.DatasetRegistered(dataset_id="d1", name="secret records")))
    yield
    await events.close()


async def reader(url: str, errors: list[str]) -> Client:
    async def note(error: Exception) -> None:
        errors.append(str(error))

    return await nats.connect(
        url,
        user="results-reader",
        password=PASSWORDS["NATS_RESULTS_READER_PASSWORD"],
        inbox_prefix=INBOX_PREFIX,
        error_cb=note,
    )


@pytest.mark.parametrize("user", ["services", "workers", "gateway"])
async def test_each_workbench_process_gets_in_with_its_own_password(nats_url: str, user: str) -> None:
    password = PASSWORDS[f"NATS_{user.upper()}_PASSWORD"]
    events = await JetStreamEventStore.connect(nats_url, user=user, password=password)
    try:
        await events.ensure_stream()
    finally:
        await events.close()


async def test_anyone_without_a_password_is_refused(nats_url: str) -> None:
    with pytest.raises(Exception, match=r"[Aa]uthorization"):
        await nats.connect(nats_url, allow_reconnect=False, connect_timeout=2)
    with pytest.raises(Exception, match=r"[Aa]uthorization"):
        await nats.connect(nats_url, user="services", password="guess", allow_reconnect=False, connect_timeout=2)


async def test_the_results_reader_reads_the_results(nats_url: str, stored: None) -> None:
    nc = await reader(nats_url, [])
    try:
        js = nc.jetstream(timeout=5)
        config = ConsumerConfig(
            name="outside",
            filter_subject="wb.results.>",
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
        )
        await js.add_consumer("WB_EVENTS", config)
        sub = await js.pull_subscribe_bind("outside", "WB_EVENTS", inbox_prefix=f"{INBOX_PREFIX}.".encode())
        [msg] = await sub.fetch(10, timeout=2)
        await msg.ack()
        assert inf.ResultRecorded.FromString(msg.data).output_text == "hi"
    finally:
        await nc.close()


async def test_the_results_reader_reads_nothing_else_and_writes_nothing(nats_url: str, stored: None) -> None:
    errors: list[str] = []
    nc = await reader(nats_url, errors)
    try:
        js = nc.jetstream(timeout=1)
        with pytest.raises(nats.errors.TimeoutError):  # no answer: the server drops a request the user may not send
            await js.add_consumer("WB_EVENTS", ConsumerConfig(name="peek", filter_subject="wb.datasets.>"))
        with pytest.raises(nats.errors.TimeoutError):  # a consumer without a filter would read the whole log
            await js.add_consumer("WB_EVENTS", ConsumerConfig(name="all"))
        with pytest.raises(nats.errors.TimeoutError):
            await js.get_last_msg("WB_EVENTS", "wb.datasets.d1", direct=True)
        with pytest.raises(nats.errors.TimeoutError):
            await js.publish("wb.results.run-1", b"forged")
        await nc.subscribe("_INBOX.>")  # other clients' replies
        await nc.subscribe("wb.datasets.>")
        await nc.publish("wb.results.run-2", b"forged")
        await nc.flush()
        await asyncio.sleep(0.2)
    finally:
        await nc.close()

    refused = [
        'publish to "$js.api.consumer.create.wb_events.peek.wb.datasets.>"',
        'publish to "$js.api.consumer.create.wb_events.all"',
        'publish to "$js.api.direct.get.wb_events',
        'publish to "wb.results.run-1"',
        'subscription to "_inbox.>"',
        'subscription to "wb.datasets.>"',
        'publish to "wb.results.run-2"',
    ]
    said = " ".join(errors).lower()
    assert [what for what in refused if what not in said] == [], errors
