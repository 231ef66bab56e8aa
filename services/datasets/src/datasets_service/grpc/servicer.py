"""DatasetService over gRPC: proto -> application call -> proto, nothing more.

Errors are not handled here: the service host's one interceptor maps them to status codes (and
sends an InvalidDataset's validation report in the status details).
"""

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc

from datasets_service.application import DatasetsApplication, Upload
from datasets_service.domain.errors import InvalidInput
from datasets_service.grpc.convert import (
    dataset_to_proto,
    record_to_proto,
    records_page_to_proto,
    upload_to_proto,
)
from workbench.datasets.v1 import datasets_pb2 as pb
from workbench.datasets.v1 import datasets_pb2_grpc as pb_grpc

RECORDS_PER_MESSAGE = 256
# Well under gRPC's default 4 MiB receive limit, so any client can read the stream; a single
# record larger than this still goes alone in its own message.
BYTES_PER_MESSAGE = 2 * 2**20


@dataclass
class DatasetServicer(pb_grpc.DatasetServiceServicer):
    app: DatasetsApplication

    async def UploadDataset(
        self, request_iterator: AsyncIterator[pb.UploadDatasetRequest], context: grpc.aio.ServicerContext
    ) -> pb.UploadDatasetResponse:
        first = await anext(request_iterator, None)
        if first is None or not first.HasField("header"):
            raise InvalidInput("an upload starts with a header message (the file name), then the file's bytes")
        upload = Upload(first.header.name, skip_invalid=first.header.skip_invalid)
        return upload_to_proto(await self.app.upload_dataset(upload, _chunks(request_iterator)))

    async def ListDatasets(
        self, request: pb.ListDatasetsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListDatasetsResponse:
        return pb.ListDatasetsResponse(datasets=[dataset_to_proto(info) for info in await self.app.list_datasets()])

    async def GetDataset(
        self, request: pb.GetDatasetRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetDatasetResponse:
        return pb.GetDatasetResponse(dataset=dataset_to_proto(await self.app.get_dataset(request.dataset_id)))

    async def ReadRecords(
        self, request: pb.ReadRecordsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ReadRecordsResponse]:
        batch: list[pb.Record] = []
        size = 0
        async for record in self.app.read_records(request.dataset_id, request.offset, request.limit):
            message = record_to_proto(record)
            message_size = message.ByteSize()
            if batch and (len(batch) == RECORDS_PER_MESSAGE or size + message_size > BYTES_PER_MESSAGE):
                yield pb.ReadRecordsResponse(records=batch)
                batch, size = [], 0
            batch.append(message)
            size += message_size
        if batch:
            yield pb.ReadRecordsResponse(records=batch)

    async def ListRecords(
        self, request: pb.ListRecordsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListRecordsResponse:
        page = await self.app.list_records(request.dataset_id, request.offset, request.limit, request.q)
        return records_page_to_proto(page)

    async def RenameDataset(
        self, request: pb.RenameDatasetRequest, context: grpc.aio.ServicerContext
    ) -> pb.RenameDatasetResponse:
        return pb.RenameDatasetResponse(
            dataset=dataset_to_proto(await self.app.rename_dataset(request.dataset_id, request.name))
        )

    async def DeleteDataset(
        self, request: pb.DeleteDatasetRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteDatasetResponse:
        await self.app.delete_dataset(request.dataset_id)
        return pb.DeleteDatasetResponse()


async def _chunks(requests: AsyncIterator[pb.UploadDatasetRequest]) -> AsyncIterator[bytes]:
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
