"""The annotations service running for real: its gRPC server on a free port, on a nats-server of the test's own."""

import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
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
