"""The annotations service running for real: its gRPC server on a free port, on a nats-server of the test's own."""

import os
import secrets
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlmodel import Session, select

from annotations_service.adapters.tables import AnnotationRow, OutputRow
from annotations_service.application import AnnotationsApplication
from annotations_service.bootstrap import start
from annotations_service.settings import AnnotationsSettings
from devstack.natsserver import NatsServer, free_port
from eventlog import JetStreamEventStore, NewEvent
from servicehost.host import Running
from workbench.annotations.v1.annotations_pb2_grpc import AnnotationServiceStub
from workbench.inference.v1.inference_pb2 import ResultRecorded


@dataclass
class Annotations:
    """The service under test, a client of it, and a second connection to the log that plays the workers."""

    service: Running[AnnotationsApplication]
    settings: AnnotationsSettings
    stub: AnnotationServiceStub
    workers: JetStreamEventStore

    async def result(self, run_id: str, dataset_id: str, record_id: str, model_id: str, text: str) -> int:
        """Appends a ResultRecorded as an inference worker would, and waits until the service has seen it."""
        event = ResultRecorded(
            run_id=run_id, dataset_id=dataset_id, record_id=record_id, model_id=model_id, output_text=text
        )
        sequence = await self.workers.append(
            NewEvent(f"wb.results.{run_id}", event, msg_id=f"result:{run_id}:{record_id}")
        )
        for name in ("annotations", "annotations_curation"):  # the projections that fold results
            await self.service.runner(name).wait_for(sequence)
        return sequence

    def rows(self) -> list[list[tuple[object, ...]]]:
        """Every row of the read model's two tables, in key order."""
        with Session(self.service.host.database) as session:
            return [
                [tuple(row.model_dump().values()) for row in session.exec(select(table).order_by(*keys))]
                for table, keys in (
                    (OutputRow, (OutputRow.dataset_id, OutputRow.record_id, OutputRow.model_id)),
                    (AnnotationRow, (AnnotationRow.dataset_id, AnnotationRow.record_id, AnnotationRow.model_id)),
                )
            ]


def annotations_settings(nats: NatsServer, tmp_path: Path, datasets_address: str | None = None) -> AnnotationsSettings:
    return AnnotationsSettings(
        nats_url=nats.url,
        address=f"127.0.0.1:{free_port()}",
        metrics_addr="",
        datasets_addr=datasets_address or f"127.0.0.1:{free_port()}",
        db_url=f"sqlite:///{tmp_path / 'read-model' / 'annotations.db'}",
    )


async def running(settings: AnnotationsSettings) -> AsyncIterator[Annotations]:
    service = await start(settings)
    workers = await JetStreamEventStore.connect(settings.nats_url)
    try:
        async with grpc.aio.insecure_channel(settings.address) as channel:
            yield Annotations(service, settings, AnnotationServiceStub(channel), workers)
    finally:
        await workers.close()
        await service.stop(grace=0)


@pytest.fixture
async def annotations(fresh_nats: NatsServer, tmp_path: Path) -> AsyncIterator[Annotations]:
    async for harness in running(annotations_settings(fresh_nats, tmp_path)):
        yield harness


def wait_until_serving(address: str, process: "subprocess.Popen[bytes]", log_path: Path, timeout: float = 60) -> None:
    """Waits until the service process at address reports SERVING on its health check."""
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the service exited at start:\n{log_path.read_text()}")
            try:
                status = health.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                if status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.1)
    raise TimeoutError(f"no service was serving on {address}:\n{log_path.read_text()}")


LABEL_STUDIO = Path(__file__).resolve().parents[3] / ".venv-labelstudio" / "bin" / "label-studio"
LABEL_STUDIO_START_S = 240.0


@dataclass(frozen=True)
class LabelStudioServer:
    """A real Label Studio server (its own venv, installed by `make install`) and its admin's API token."""

    url: str
    token: str = field(repr=False)


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabelStudioServer]:
    """Label Studio on a free loopback port with a preset legacy token, once per session (it takes
    about a minute to start); stopped at the end."""
    if not LABEL_STUDIO.exists():
        pytest.fail(f"{LABEL_STUDIO} is missing: run `make install` (it installs label-studio into .venv-labelstudio)")
    data_dir = tmp_path_factory.mktemp("label-studio")
    port, token = free_port(), secrets.token_hex(20)
    env = {
        **os.environ,
        "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",  # without it the preset token is refused (401)
        "LABEL_STUDIO_USERNAME": "admin@example.com",
        "LABEL_STUDIO_PASSWORD": secrets.token_hex(12),
        "LABEL_STUDIO_USER_TOKEN": token,
        "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
    }
    log_path = data_dir / "label-studio.log"
    command = [str(LABEL_STUDIO), "start", "--no-browser", "--host", "127.0.0.1", "--port", str(port)]
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(command, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_health(url, process, log_path)
        yield LabelStudioServer(url, token)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _wait_for_health(url: str, process: "subprocess.Popen[bytes]", log_path: Path) -> None:
    deadline = time.monotonic() + LABEL_STUDIO_START_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Label Studio exited at start:\n{log_path.read_text()[-4000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"Label Studio did not answer /health at {url}:\n{log_path.read_text()[-4000:]}")
