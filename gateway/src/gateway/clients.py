"""gRPC channels to the three services, opened once at start and shared by every request."""

import asyncio
from typing import TYPE_CHECKING, cast

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from eventlog.serving import insecure_channel
from gateway.config import Settings

if TYPE_CHECKING:  # the async stub types exist in the .pyi stubs only
    from workbench.annotations.v1.annotations_pb2_grpc import AnnotationServiceAsyncStub
    from workbench.datasets.v1.datasets_pb2_grpc import DatasetServiceAsyncStub
    from workbench.inference.v1.inference_pb2_grpc import InferenceServiceAsyncStub
from workbench.annotations.v1 import annotations_pb2_grpc
from workbench.datasets.v1 import datasets_pb2_grpc
from workbench.inference.v1 import inference_pb2_grpc

# Unary calls answer from read models; a call slower than this is a stuck service, not a busy one.
RPC_TIMEOUT_S = 30.0
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
    def open(cls, settings: Settings) -> "Clients":
        return cls(
            {
                "datasets": insecure_channel(settings.datasets_addr),
                "inference": insecure_channel(settings.inference_addr),
                "annotations": insecure_channel(settings.annotations_addr),
            }
        )

    async def close(self) -> None:
        await asyncio.gather(*(channel.close() for channel in self.channels.values()))

    async def health(self) -> dict[str, str]:
        """Each service's own gRPC health answer: "ok" when SERVING, else "down"."""

        async def check(channel: grpc.aio.Channel) -> str:
            try:
                reply = await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=""), timeout=HEALTH_TIMEOUT_S
                )
            except grpc.aio.AioRpcError:
                return "down"
            return "ok" if reply.status == health_pb2.HealthCheckResponse.SERVING else "down"

        answers = await asyncio.gather(*(check(channel) for channel in self.channels.values()))
        return dict(zip(self.channels, answers, strict=True))
