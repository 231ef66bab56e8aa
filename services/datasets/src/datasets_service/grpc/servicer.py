"""DatasetService over gRPC: proto -> application call -> proto, nothing more.

Errors are not handled here: the server's one interceptor maps them with ERROR_MAP.
"""

import hashlib
from collections.abc import AsyncIterator, Callable, Iterable

import grpc
import nats.errors
from google.protobuf.timestamp_pb2 import Timestamp

from datasets_service.application import DatasetInfo, DatasetsApplication
from datasets_service.domain.errors import Conflict, InvalidInput, NotFound, StoredFileUnreadable
from datasets_service.domain.records import Record
from eventlog import ConcurrencyConflict
from workbench.common.v1.common_pb2 import ChatMessage
from workbench.datasets.v1 import datasets_pb2, datasets_pb2_grpc
from workbench.datasets.v1.datasets_pb2 import (
    Dataset,
    GetDatasetRequest,
    GetDatasetResponse,
    ListDatasetsRequest,
    ListDatasetsResponse,
    ReadRecordsRequest,
    ReadRecordsResponse,
    UploadDatasetRequest,
    UploadDatasetResponse,
)

SERVICE_NAME = datasets_pb2.DESCRIPTOR.services_by_name["DatasetService"].full_name
RECORDS_PER_MESSAGE = 256
# Well under gRPC's default 4 MiB receive limit, so any client can read the stream; a single
# record larger than this still goes alone in its own message.
BYTES_PER_MESSAGE = 2 * 2**20

ERROR_MAP: dict[type[BaseException], grpc.StatusCode] = {
    NotFound: grpc.StatusCode.NOT_FOUND,
    InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
    Conflict: grpc.StatusCode.ABORTED,
    ConcurrencyConflict: grpc.StatusCode.ABORTED,
    StoredFileUnreadable: grpc.StatusCode.DATA_LOSS,
    # NATS unreachable or slow: the caller may retry later.
    TimeoutError: grpc.StatusCode.UNAVAILABLE,
    nats.errors.NoRespondersError: grpc.StatusCode.UNAVAILABLE,
    nats.errors.ConnectionClosedError: grpc.StatusCode.UNAVAILABLE,
    nats.errors.ConnectionReconnectingError: grpc.StatusCode.UNAVAILABLE,
    nats.errors.NoServersError: grpc.StatusCode.UNAVAILABLE,
}


class DatasetServicer(datasets_pb2_grpc.DatasetServiceServicer):
    def __init__(self, app: DatasetsApplication) -> None:
        self.app = app

    async def UploadDataset(
        self, request_iterator: AsyncIterator[UploadDatasetRequest], context: grpc.aio.ServicerContext
    ) -> UploadDatasetResponse:
        first = await anext(request_iterator, None)
        if first is None or not first.HasField("header"):
            raise InvalidInput("an upload starts with a header message (the file name), then the file's bytes")
        dataset = await self.app.upload_dataset(first.header.name, _chunks(request_iterator))
        return UploadDatasetResponse(dataset=dataset_message(dataset))

    async def ListDatasets(
        self, request: ListDatasetsRequest, context: grpc.aio.ServicerContext
    ) -> ListDatasetsResponse:
        return ListDatasetsResponse(datasets=[dataset_message(info) for info in self.app.list_datasets()])

    async def GetDataset(self, request: GetDatasetRequest, context: grpc.aio.ServicerContext) -> GetDatasetResponse:
        return GetDatasetResponse(dataset=dataset_message(self.app.get_dataset(request.dataset_id)))

    async def ReadRecords(
        self, request: ReadRecordsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[ReadRecordsResponse]:
        records = await self.app.read_records(request.dataset_id, request.offset, request.limit)
        batch: list[datasets_pb2.Record] = []
        size = 0
        for message in _record_messages(records):
            if batch and (len(batch) == RECORDS_PER_MESSAGE or size + message.ByteSize() > BYTES_PER_MESSAGE):
                yield ReadRecordsResponse(records=batch)
                batch, size = [], 0
            batch.append(message)
            size += message.ByteSize()
        if batch:
            yield ReadRecordsResponse(records=batch)


def register(app: DatasetsApplication) -> Callable[[grpc.aio.Server], None]:
    """What start_server calls to add this service to a server."""

    def add(server: grpc.aio.Server) -> None:
        datasets_pb2_grpc.add_DatasetServiceServicer_to_server(DatasetServicer(app), server)

    return add


async def _chunks(requests: AsyncIterator[UploadDatasetRequest]) -> AsyncIterator[bytes]:
    """The file's bytes; fails at the end unless a trailer confirmed their size and digest."""
    digest = hashlib.sha256()
    size = 0
    async for request in requests:
        if request.HasField("header"):
            raise InvalidInput("only the first message of an upload may carry a header; send the rest as chunks")
        if request.HasField("trailer"):
            trailer = request.trailer
            if trailer.size_bytes != size or trailer.sha256.lower() != digest.hexdigest():
                raise InvalidInput(
                    f"the upload was damaged on the way: received {size} bytes, the sender says "
                    f"{trailer.size_bytes}; nothing was registered, send the file again"
                )
            return
        digest.update(request.chunk)
        size += len(request.chunk)
        yield request.chunk
    raise InvalidInput("the upload ended before its trailer (cut off?); nothing was registered, send the file again")


def dataset_message(info: DatasetInfo) -> Dataset:
    registered_at = Timestamp()
    registered_at.FromDatetime(info.registered_at)
    return Dataset(
        dataset_id=info.dataset_id,
        name=info.name,
        format=info.format,
        record_count=info.record_count,
        sha256=info.sha256,
        object_name=info.object_name,
        size_bytes=info.size_bytes,
        registered_at=registered_at,
    )


def _record_messages(records: Iterable[Record]) -> list[datasets_pb2.Record]:
    return [
        datasets_pb2.Record(
            record_id=record.record_id,
            index=record.index,
            prompt=record.prompt or "",
            messages=[ChatMessage(role=message.role, content=message.content) for message in record.messages],
        )
        for record in records
    ]
