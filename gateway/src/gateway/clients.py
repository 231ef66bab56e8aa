"""gRPC channels to the three services, opened once at start and shared by every request.

Every call carries a deadline (WB_RPC_TIMEOUT_S unless the call names its own): a service that
hangs costs a request 504, never a stuck worker.
"""

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.settings import GatewaySettings
from servicehost.grpc_client import open_channel
from workbench.common.v1 import operations_pb2, operations_pb2_grpc

if TYPE_CHECKING:  # the async stub types exist in the .pyi stubs only
    from workbench.annotations.v1.annotations_pb2_grpc import AnnotationServiceAsyncStub
    from workbench.datasets.v1.datasets_pb2_grpc import DatasetServiceAsyncStub
    from workbench.inference.v1.inference_pb2_grpc import InferenceServiceAsyncStub
from workbench.annotations.v1 import annotations_pb2_grpc
from workbench.datasets.v1 import datasets_pb2_grpc
from workbench.inference.v1 import inference_pb2_grpc

HEALTH_TIMEOUT_S = 2.0


class Clients:
    """The three services' async stubs over channels this object owns."""

    # A plain class, not a dataclass: Litestar's dependency validation would try to resolve the
    # stub annotations, which exist in the type stubs only.
    def __init__(self, channels: dict[str, grpc.aio.Channel]) -> None:
        self.channels = channels
        # The stubs' overloads pick the sync type for an aio channel; these are the async ones.
        self.datasets = cast("DatasetServiceAsyncStub", datasets_pb2_grpc.DatasetServiceStub(channels["datasets"]))
        self.inference = cast(
            "InferenceServiceAsyncStub", inference_pb2_grpc.InferenceServiceStub(channels["inference"])
        )
        self.annotations = cast(
            "AnnotationServiceAsyncStub", annotations_pb2_grpc.AnnotationServiceStub(channels["annotations"])
        )

    @classmethod
    def open(cls, settings: GatewaySettings) -> "Clients":
        timeout = settings.rpc_timeout_s
        return cls(
            {
                "datasets": open_channel(settings.datasets_addr, timeout),
                "inference": open_channel(settings.inference_addr, timeout),
                "annotations": open_channel(settings.annotations_addr, timeout),
            }
        )

    async def close(self) -> None:
        await asyncio.gather(*(channel.close() for channel in self.channels.values()))

    async def health(self) -> dict[str, "ServiceHealth"]:
        """Each service's own gRPC health answer and, when it answers, how its read models are doing."""

        async def check(channel: grpc.aio.Channel) -> ServiceHealth:
            health_call = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=HEALTH_TIMEOUT_S
            )
            status_call = operations_pb2_grpc.OperationsServiceStub(channel).GetStatus(
                operations_pb2.GetStatusRequest(), timeout=HEALTH_TIMEOUT_S
            )
            reply: health_pb2.HealthCheckResponse | BaseException
            status: operations_pb2.GetStatusResponse | BaseException
            reply, status = await asyncio.gather(health_call, status_call, return_exceptions=True)
            if isinstance(reply, BaseException) or reply.status != health_pb2.HealthCheckResponse.SERVING:
                return ServiceHealth(serving=False)
            if isinstance(status, BaseException):  # serving, but says nothing of its read models
                return ServiceHealth(serving=True)
            return ServiceHealth(
                serving=True,
                read_models=True,
                parked_events=sum(p.parked for p in status.projections),
                projector_lag=sum(p.lag for p in status.projections),
                storage_warnings=tuple(status.storage_warnings),
            )

        answers = await asyncio.gather(*(check(channel) for channel in self.channels.values()))
        return dict(zip(self.channels, answers, strict=True))


@dataclass(frozen=True, slots=True)
class ServiceHealth:
    serving: bool
    read_models: bool = False  # whether it told how its read models are doing
    parked_events: int = 0  # events its projections could not apply (`python -m <service> parked`)
    projector_lag: int = 0  # events its projections have not applied yet
    storage_warnings: tuple[str, ...] = ()  # streams whose replicas differ from its settings
