"""The datasets service as seen from inference: does a dataset exist, how many records, and its records."""

from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc

from eventlog.serving import insecure_channel
from inference_service.adapters.engine import Prompt
from inference_service.domain.errors import InferenceError, NotFound, Unavailable
from workbench.datasets.v1 import datasets_pb2, datasets_pb2_grpc


@dataclass(frozen=True, slots=True)
class DatasetSummary:
    dataset_id: str
    name: str
    record_count: int


@dataclass(frozen=True, slots=True)
class DatasetRecord:
    record_id: str
    prompt: Prompt


class DatasetsClient:
    """A gRPC client of DatasetService; its errors become this service's domain errors."""

    def __init__(self, address: str) -> None:
        self.address = address
        self._channel = insecure_channel(address)
        self._stub = datasets_pb2_grpc.DatasetServiceStub(self._channel)

    async def close(self) -> None:
        await self._channel.close()

    async def get(self, dataset_id: str) -> DatasetSummary:
        """The dataset's summary; NotFound when the datasets service does not know it."""
        try:
            response = await self._stub.GetDataset(datasets_pb2.GetDatasetRequest(dataset_id=dataset_id), timeout=30)
        except grpc.aio.AioRpcError as error:
            raise self._translate(error, dataset_id) from None
        dataset = response.dataset
        return DatasetSummary(dataset.dataset_id, dataset.name, dataset.record_count)

    async def read_records(self, dataset_id: str, offset: int, limit: int) -> AsyncIterator[DatasetRecord]:
        """The records [offset, offset + limit) in file order, as the service streams them."""
        request = datasets_pb2.ReadRecordsRequest(dataset_id=dataset_id, offset=offset, limit=limit)
        try:
            async for response in self._stub.ReadRecords(request, timeout=300):
                for record in response.records:
                    yield DatasetRecord(record.record_id, _prompt(record))
        except grpc.aio.AioRpcError as error:
            raise self._translate(error, dataset_id) from None

    def _translate(self, error: grpc.aio.AioRpcError, dataset_id: str) -> InferenceError:
        code = error.code()
        if code == grpc.StatusCode.NOT_FOUND:
            return NotFound(f"dataset {dataset_id!r} not found; upload it or pick one from ListDatasets")
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            return Unavailable(f"the datasets service at {self.address} is not answering; try again shortly")
        return InferenceError(f"the datasets service failed ({code.name}): {error.details()}")


def _prompt(record: datasets_pb2.Record) -> Prompt:
    if record.messages:
        return Prompt(messages=tuple((message.role, message.content) for message in record.messages))
    return Prompt(text=record.prompt)
