"""How a client sends a file to DatasetService.UploadDataset, for tests that upload over gRPC."""

import hashlib
from collections.abc import AsyncIterator

from workbench.datasets.v1.datasets_pb2 import UploadDatasetRequest, UploadHeader, UploadTrailer


async def upload_requests(
    name: str, data: bytes, chunk_size: int = 64 * 1024, trailer: bool = True
) -> AsyncIterator[UploadDatasetRequest]:
    """The header, the bytes in chunks, then (unless told not to) the trailer that completes it."""
    yield UploadDatasetRequest(header=UploadHeader(name=name))
    for at in range(0, len(data), chunk_size):
        yield UploadDatasetRequest(chunk=data[at : at + chunk_size])
    if trailer:
        yield UploadDatasetRequest(trailer=UploadTrailer(size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest()))
