"""Reads a dataset's records through the datasets service's gRPC API (never from its storage)."""

from collections.abc import AsyncIterator, Sequence

import grpc

from annotations_service.domain.errors import AnnotationError, InvalidInput, NotFound, Unavailable
from eventlog.serving import insecure_channel
from workbench.datasets.v1.datasets_pb2 import ReadRecordsRequest, Record
from workbench.datasets.v1.datasets_pb2_grpc import DatasetServiceStub

_TRANSLATED: dict[grpc.StatusCode, type[AnnotationError]] = {
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidInput,
}


class DatasetsClient:
    """The records of a dataset, streamed from DatasetService.ReadRecords in file order."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.channel = insecure_channel(address)
        self.stub = DatasetServiceStub(self.channel)

    async def record_batches(self, dataset_id: str) -> AsyncIterator[Sequence[Record]]:
        try:
            async for response in self.stub.ReadRecords(ReadRecordsRequest(dataset_id=dataset_id)):
                yield response.records
        except grpc.aio.AioRpcError as error:
            cls = _TRANSLATED.get(error.code())
            if cls is not None:
                raise cls(error.details() or f"dataset {dataset_id!r}: {error.code().name}") from None
            raise Unavailable(
                f"the datasets service at {self.address} did not answer ({error.code().name}): "
                "check that it is running and that WB_DATASETS_ADDR points at it"
            ) from None

    async def close(self) -> None:
        await self.channel.close()
