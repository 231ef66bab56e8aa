"""The datasets service as seen from inference: does a dataset exist, how many records, and its records."""

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

import grpc

from inference_service.adapters.engine import Prompt
from inference_service.domain.errors import NotFound, ServiceError
from servicehost.grpc_client import DEFAULT_RPC_TIMEOUT_S, open_channel, peer_error
from workbench.datasets.v1 import datasets_pb2, datasets_pb2_grpc

# A shard's records come in one stream: longer than one call's deadline, so a large shard of a
# large dataset is not cut off while the datasets service reads and parses its file.
READ_RECORDS_TIMEOUT_S = 300.0


@dataclass(frozen=True, slots=True)
class DatasetSummary:
    dataset_id: str
    name: str
    record_count: int
    sha256: str = ""  # of the uploaded file: part of what reproduces a run


@dataclass(frozen=True, slots=True)
class DatasetRecord:
    record_id: str
    prompt: Prompt
    sampling: Mapping[str, float | int] = field(default_factory=dict)  # the fields the record sets
    json_schema: str = ""  # the schema the record's answers must follow (JSON text); "": none


class DatasetsClient:
    """A gRPC client of DatasetService; its errors become the service error kinds."""

    def __init__(self, address: str, timeout_s: float = DEFAULT_RPC_TIMEOUT_S) -> None:
        self.address = address
        self._channel = open_channel(address, timeout_s)
        self._stub = datasets_pb2_grpc.DatasetServiceStub(self._channel)

    async def close(self) -> None:
        await self._channel.close()

    async def get(self, dataset_id: str) -> DatasetSummary:
        """The dataset's summary; NotFound when the datasets service does not know it."""
        try:
            response = await self._stub.GetDataset(datasets_pb2.GetDatasetRequest(dataset_id=dataset_id))
        except grpc.aio.AioRpcError as error:
            raise self._error(error, dataset_id) from None
        dataset = response.dataset
        return DatasetSummary(dataset.dataset_id, dataset.name, dataset.record_count, dataset.sha256)

    async def read_records(self, dataset_id: str, offset: int, limit: int) -> AsyncIterator[DatasetRecord]:
        """The records [offset, offset + limit) in file order, as the service streams them."""
        request = datasets_pb2.ReadRecordsRequest(dataset_id=dataset_id, offset=offset, limit=limit)
        try:
            async for response in self._stub.ReadRecords(request, timeout=READ_RECORDS_TIMEOUT_S):
                for record in response.records:
                    yield DatasetRecord(
                        record.record_id, _prompt(record), _sampling(record.sampling), record.json_schema
                    )
        except grpc.aio.AioRpcError as error:
            raise self._error(error, dataset_id) from None

    def _error(self, error: grpc.aio.AioRpcError, dataset_id: str) -> ServiceError:
        if error.code() == grpc.StatusCode.NOT_FOUND:
            return NotFound(f"dataset {dataset_id!r} not found; upload it or pick one from ListDatasets")
        return peer_error(error, "datasets", self.address)


def _prompt(record: datasets_pb2.Record) -> Prompt:
    if record.messages:
        return Prompt(messages=tuple((message.role, message.content) for message in record.messages))
    return Prompt(text=record.prompt)


def _sampling(sampling: datasets_pb2.RecordSampling) -> dict[str, float | int]:
    """The sampling fields a record sets (proto3 optional fields: set or not)."""
    return {item.name: value for item, value in sampling.ListFields()}
