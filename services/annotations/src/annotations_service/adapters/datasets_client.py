"""Reads a dataset's records through the datasets service's gRPC API (never from its storage)."""

from collections.abc import AsyncIterator, Sequence

import grpc

from servicehost.grpc_client import DEFAULT_RPC_TIMEOUT_S, open_channel, peer_error
from workbench.datasets.v1.datasets_pb2 import GetDatasetRequest, ReadRecordsRequest, Record
from workbench.datasets.v1.datasets_pb2_grpc import DatasetServiceStub

# A deadline covers a whole stream, and an export reads every record of a dataset.
READ_ALL_TIMEOUT_S = 3600.0


class DatasetsClient:
    """The records of a dataset, streamed from DatasetService.ReadRecords in file order.

    A failed call becomes the error kind of servicehost.errors (NotFound for an unknown dataset,
    Unavailable when the service does not answer).
    """

    def __init__(self, address: str, timeout_s: float = DEFAULT_RPC_TIMEOUT_S) -> None:
        self.address = address
        self.channel = open_channel(address, timeout_s)
        self.stub = DatasetServiceStub(self.channel)

    async def record_batches(self, dataset_id: str) -> AsyncIterator[Sequence[Record]]:
        request = ReadRecordsRequest(dataset_id=dataset_id)
        try:
            async for response in self.stub.ReadRecords(request, timeout=READ_ALL_TIMEOUT_S):
                yield response.records
        except grpc.aio.AioRpcError as error:
            raise peer_error(error, "datasets", self.address) from None

    async def dataset_name(self, dataset_id: str) -> str:
        """The dataset's name (what a Label Studio project created for it is called)."""
        try:
            response = await self.stub.GetDataset(GetDatasetRequest(dataset_id=dataset_id))
        except grpc.aio.AioRpcError as error:
            raise peer_error(error, "datasets", self.address) from None
        return str(response.dataset.name)

    async def close(self) -> None:
        await self.channel.close()
