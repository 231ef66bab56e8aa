"""The service host with real sockets: a gRPC server that maps errors and counts calls, channels
whose calls all carry a deadline, metrics over HTTP, OperationsService, and the lifecycle."""

import asyncio
import os
import signal
import urllib.request
from collections.abc import AsyncIterator, Sequence

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlmodel import Field, Session, SQLModel, delete

from devstack.faults import freeze, thaw
from devstack.natsserver import NatsServer, free_port
from eventlog import InMemoryEventStore, NewEvent, StoredEvent
from servicehost.errors import InvalidInput, NotFound
from servicehost.grpc_client import open_channel, peer_error, status_details
from servicehost.grpc_server import GrpcService
from servicehost.host import ServiceHost
from servicehost.settings import ServiceSettings
from workbench.common.v1 import common_pb2, operations_pb2, operations_pb2_grpc
from workbench.datasets.v1 import datasets_pb2 as ds
from workbench.datasets.v1 import datasets_pb2_grpc


class Seen(SQLModel, table=True):
    __tablename__ = "test_host_seen"

    sequence: int = Field(primary_key=True)
    content: str


class SeenProjection:
    name = "test-host.seen"
    subjects: Sequence[str] = ("h.>",)
    tables = (Seen,)

    def apply(self, session: Session, event: StoredEvent) -> None:
        if event.event.content == "poison":  # type: ignore[attr-defined]
            raise ValueError("cannot fold poison")
        session.add(Seen(sequence=event.sequence, content=event.event.content))  # type: ignore[attr-defined]

    def clear(self, session: Session) -> None:
        session.execute(delete(Seen))


class SlowDatasets(datasets_pb2_grpc.DatasetServiceServicer):
    async def GetDataset(
        self, request: ds.GetDatasetRequest, context: grpc.aio.ServicerContext
    ) -> ds.GetDatasetResponse:
        if request.dataset_id == "slow":
            await asyncio.sleep(5)
        raise NotFound(f"there is no dataset {request.dataset_id!r}")


def settings() -> ServiceSettings:
    return ServiceSettings(address=f"127.0.0.1:{free_port()}", db_url="sqlite://", metrics_addr="127.0.0.1:0")


@pytest.fixture
async def host() -> AsyncIterator[ServiceHost]:
    host = await ServiceHost.connect("test-host", settings(), store=InMemoryEventStore())
    host.project(SeenProjection())
    await host.catch_up()
    await host.start(
        GrpcService(
            ds.DESCRIPTOR.services_by_name["DatasetService"],
            SlowDatasets(),
            datasets_pb2_grpc.add_DatasetServiceServicer_to_server,
        )
    )
    yield host
    await host.stop(grace=0)


def address(host: ServiceHost) -> str:
    assert isinstance(host.settings, ServiceSettings)
    return host.settings.address


def metrics(host: ServiceHost) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{host.metrics_port}/metrics", timeout=5) as response:
        return str(response.read().decode())


async def test_a_domain_error_crosses_the_wire_with_its_code_and_words_and_is_counted(host: ServiceHost) -> None:
    async with open_channel(address(host)) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await datasets_pb2_grpc.DatasetServiceStub(channel).GetDataset(ds.GetDatasetRequest(dataset_id="ds_x"))

    assert failed.value.code() == grpc.StatusCode.NOT_FOUND
    assert failed.value.details() == "there is no dataset 'ds_x'"
    assert isinstance(peer_error(failed.value, "datasets", address(host)), NotFound)
    assert (
        'grpc_server_handled_total{grpc_code="NOT_FOUND",grpc_method="GetDataset",'
        'grpc_service="workbench.datasets.v1.DatasetService"}' in metrics(host)
    )


async def test_every_call_on_a_workbench_channel_carries_a_deadline(host: ServiceHost) -> None:
    async with open_channel(address(host), timeout_s=0.3) as channel:
        stub = datasets_pb2_grpc.DatasetServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as late:
            await stub.GetDataset(ds.GetDatasetRequest(dataset_id="slow"))
        with pytest.raises(grpc.aio.AioRpcError) as patient:  # a call that names its own deadline keeps it
            await stub.GetDataset(ds.GetDatasetRequest(dataset_id="fast"), timeout=10)

    assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert patient.value.code() == grpc.StatusCode.NOT_FOUND
    assert "the datasets service at" in str(peer_error(late.value, "datasets", address(host)))


async def test_operations_service_reports_projections_and_retries_parked_events(host: ServiceHost) -> None:
    for text in ("one", "poison", "two"):
        last = await host.store.append(NewEvent("h.a", common_pb2.ChatMessage(content=text)))
    await host.runners["test-host.seen"].wait_for(last)

    async with open_channel(address(host)) as channel:
        operations = operations_pb2_grpc.OperationsServiceStub(channel)
        status = await operations.GetStatus(operations_pb2.GetStatusRequest())
        parked = await operations.ListParkedEvents(operations_pb2.ListParkedEventsRequest())
        retried = await operations.RetryParkedEvents(operations_pb2.RetryParkedEventsRequest())
        health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())

    assert status.service == "test-host"
    assert [(p.name, p.position, p.lag, p.parked) for p in status.projections] == [("test-host.seen", last, 0, 1)]
    assert [(e.sequence, e.subject) for e in parked.events] == [(last - 1, "h.a")]
    assert "cannot fold poison" in parked.events[0].error
    assert (retried.applied, retried.still_parked) == (0, 1)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    assert 'wb_projection_parked_events{projection="test-host.seen"} 1.0' in metrics(host)
    assert 'wb_events_appended_total{type="workbench.common.v1.ChatMessage"}' in metrics(host)


async def test_sigterm_stops_the_host_gracefully_with_exit_code_zero(host: ServiceHost) -> None:
    running = asyncio.create_task(host.run_until_signalled())
    await asyncio.sleep(0.1)
    os.kill(os.getpid(), signal.SIGTERM)

    assert await asyncio.wait_for(running, 10) == 0
    async with open_channel(address(host), timeout_s=1) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as gone:
            await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    assert gone.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # the host let go of the signals


async def test_a_task_that_ends_stops_the_host_with_exit_code_one(host: ServiceHost) -> None:
    async def worker_loop() -> None:
        raise RuntimeError("the worker loop died")

    loop_task = asyncio.create_task(worker_loop(), name="worker loop")

    assert await asyncio.wait_for(host.run_until_signalled(loop_task), 10) == 1


async def test_an_error_with_details_carries_them_in_the_status(host: ServiceHost) -> None:
    class Refusing(datasets_pb2_grpc.DatasetServiceServicer):
        async def GetDataset(self, request: ds.GetDatasetRequest, context: grpc.aio.ServicerContext) -> None:
            report = ds.ValidationReport(
                problems=[ds.Problem(line=3, field="prompt", reason="must be a string")], more=4
            )
            raise InvalidInput("line 3: field prompt must be a string", details=[report])

    other = await ServiceHost.connect("test-refusing", settings(), store=InMemoryEventStore())
    await other.start(Refusing())
    try:
        async with open_channel(address(other)) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await datasets_pb2_grpc.DatasetServiceStub(channel).GetDataset(ds.GetDatasetRequest())
    finally:
        await other.stop(grace=0)

    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details() == "line 3: field prompt must be a string"
    translated = peer_error(refused.value, "datasets", address(other))
    assert isinstance(translated, InvalidInput)
    assert [(p.line, p.field) for p in translated.details[0].problems] == [(3, "prompt")]  # type: ignore[attr-defined]
    assert status_details(refused.value)[0].more == 4  # type: ignore[attr-defined]


class SeenInTheLog(SeenProjection):
    """The same rows from subjects of the workbench's own stream (a fresh nats-server holds no other)."""

    subjects: Sequence[str] = ("wb.datasets.>",)


async def test_a_catch_up_a_frozen_nats_server_left_unanswered_completes_once_it_answers(
    fresh_nats: NatsServer,
) -> None:
    connection = ServiceSettings(
        address=f"127.0.0.1:{free_port()}", db_url="sqlite://", metrics_addr="off", nats_url=fresh_nats.url
    )
    host = await ServiceHost.connect("test-host", connection)
    try:
        for n in range(2):
            await host.store.append(NewEvent(f"wb.datasets.d{n}", common_pb2.ChatMessage(content=f"seen {n}")))
        runner = host.project(SeenInTheLog())
        assert fresh_nats.process is not None
        freeze(fresh_nats.process.pid)  # longer than nats-py's request timeout (5 s): the first try fails
        asyncio.get_running_loop().call_later(7.0, thaw, fresh_nats.process.pid)

        await host.catch_up()

        assert runner.status().position == 2
    finally:
        thaw(fresh_nats.process.pid)
        await host.stop(grace=0)
