"""A 20 MB upload to a real `python -m datasets_service` process grows its peak memory by far less
than the file: the upload is spooled to disk, read back streaming and stored page by page.

(The 200 MB one, through the gateway, is the benchmark: bench/upload.py.)
"""

import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from devstack.natsserver import NatsServer, free_port
from servicehost.grpc_server import MESSAGE_OPTIONS
from tests.uploads import upload_requests
from workbench.datasets.v1.datasets_pb2 import ReadRecordsRequest, Record, UploadDatasetResponse
from workbench.datasets.v1.datasets_pb2_grpc import DatasetServiceStub

MB = 2**20
# The peak may grow by this much at most while a 20 MB file goes in: a few pages, the read buffers,
# the ids seen so far. Holding the file (let alone parsing it whole) would take several times it.
ALLOWED_GROWTH = 40 * MB


def big_file(target_bytes: int) -> bytes:
    """Chat records with metadata, about 500 bytes each, until the file is target_bytes long."""
    lines = []
    size = n = 0
    while size < target_bytes:
        line = json.dumps(
            {
                "id": f"candidate-{n:07d}",
                "messages": [
                    {"role": "system", "content": "You grade candidates. Answer in one sentence."},
                    {"role": "user", "content": f"Candidate {n} has {n % 40} years of experience. " * 4},
                ],
                "name": f"Person {n}",
                "years": n % 40,
                "pedigree": ["school", "company", f"team {n % 7}"],
            }
        )
        lines.append(line)
        size += len(line) + 1
        n += 1
    return ("\n".join(lines) + "\n").encode()


def peak_rss(pid: int) -> int:
    """The process's peak resident set (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc: not Linux?")


def wait_until_serving(address: str, process: "subprocess.Popen[bytes]", log_path: Path) -> None:
    deadline = time.monotonic() + 60
    with grpc.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the service exited at start:\n{log_path.read_text()}")
            try:
                if (
                    health.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                    == health_pb2.HealthCheckResponse.SERVING
                ):
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.1)
    raise TimeoutError(f"no service was serving on {address}:\n{log_path.read_text()}")


@pytest.fixture
def datasets_process(fresh_nats: NatsServer, tmp_path: Path) -> Iterator[tuple[str, "subprocess.Popen[bytes]"]]:
    """The datasets service as its own process, on the test's nats-server."""
    address = f"127.0.0.1:{free_port()}"
    env = {
        **os.environ,
        "WB_NATS_URL": fresh_nats.url,
        "WB_DATASETS_ADDR": address,
        "WB_DATASETS_DB_URL": f"sqlite:///{tmp_path / 'datasets.db'}",
        "WB_DATASETS_METRICS_ADDR": "127.0.0.1:0",
        "WB_DATASETS_SPOOL_DIR": str(tmp_path / "spool"),  # made by the service
        "WB_MAX_UPLOAD_BYTES": str(64 * MB),
    }
    log_path = tmp_path / "datasets-service.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "datasets_service"], env=env, stdout=log_file, stderr=log_file
        )
    try:
        wait_until_serving(address, process, log_path)
        yield address, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def upload(stub: DatasetServiceStub, name: str, data: bytes) -> UploadDatasetResponse:
    response: UploadDatasetResponse = await stub.UploadDataset(upload_requests(name, data, 64 * 1024), timeout=300)
    return response


async def read_all(stub: DatasetServiceStub, dataset_id: str, offset: int = 0) -> AsyncIterator[Record]:
    async for response in stub.ReadRecords(ReadRecordsRequest(dataset_id=dataset_id, offset=offset), timeout=300):
        for record in response.records:
            yield record


async def test_a_20_mb_upload_keeps_the_service_memory_far_below_the_file_size(
    datasets_process: tuple[str, "subprocess.Popen[bytes]"], tmp_path: Path
) -> None:
    address, process = datasets_process
    data = big_file(20 * MB)
    count = data.count(b"\n")
    async with grpc.aio.insecure_channel(address, options=MESSAGE_OPTIONS) as channel:
        stub = DatasetServiceStub(channel)
        await upload(stub, "warm-up.jsonl", data[: data.index(b"\n", 4 * MB) + 1])  # every code path loaded once
        before = peak_rss(process.pid)

        answer = await upload(stub, "big.jsonl", data)

        after = peak_rss(process.pid)
        assert answer.dataset.record_count == count
        assert after - before < ALLOWED_GROWTH, f"peak RSS grew by {(after - before) / MB:.1f} MB for a 20 MB upload"
        assert list((tmp_path / "spool").iterdir()) == []
        seen = 0
        async for record in read_all(stub, answer.dataset.dataset_id):
            assert record.index == seen
            seen += 1
        assert seen == count
        last = json.loads(data.rsplit(b"\n", 2)[-2])
        [tail] = [record async for record in read_all(stub, answer.dataset.dataset_id, offset=count - 1)]
        assert tail.record_id == last["id"]
        assert json.loads(tail.metadata_json) == {key: last[key] for key in ("name", "years", "pedigree")}
