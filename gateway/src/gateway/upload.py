"""Streams a multipart upload into DatasetService.UploadDataset without holding the file.

The request body is parsed as it arrives; the "file" field goes to the service in 256 KiB chunks,
with the gRPC call's flow control pacing the browser. Only a body that ended cleanly
ends the request stream normally; anything else cancels the call, so the service never takes a
truncated file for a whole one.
"""

import asyncio
import hashlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TYPE_CHECKING

import grpc
from litestar.exceptions import ClientException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from multipart import MultipartSegment, ParserError, PushMultipartParser, parse_options_header

from workbench.datasets.v1 import datasets_pb2 as ds

if TYPE_CHECKING:
    from workbench.datasets.v1.datasets_pb2_grpc import DatasetServiceAsyncStub

CHUNK_BYTES = 256 * 1024
# The whole upload must fit in one call's deadline; a browser on a slow link is not a stuck service.
UPLOAD_TIMEOUT_S = 3600.0
FILE_FIELD = "file"


def multipart_boundary(content_type: str) -> str:
    kind, options = parse_options_header(content_type)
    boundary = options.get("boundary")
    if kind != "multipart/form-data" or not boundary:
        raise ClientException(f'send the dataset as multipart/form-data with a field named "{FILE_FIELD}"')
    return str(boundary)


async def upload_requests(
    body: AsyncIterator[bytes], boundary: str, max_bytes: int
) -> AsyncGenerator[ds.UploadDatasetRequest, None]:
    """The header, then the file's bytes in chunks; ends only once the whole body has been parsed."""
    buffer = bytearray()
    received = 0
    digest = hashlib.sha256()
    in_file = seen_file = False
    try:
        with PushMultipartParser(boundary, max_header_count=16, max_segment_count=64) as parser:
            async for data in body:
                for event in parser.parse(data):
                    if isinstance(event, MultipartSegment):
                        in_file = event.name == FILE_FIELD and not seen_file
                        seen_file = seen_file or in_file
                        if in_file:
                            # The datasets service makes the name safe (one rule for every client).
                            yield ds.UploadDatasetRequest(header=ds.UploadHeader(name=event.filename or ""))
                    elif event is None:
                        in_file = False
                    elif in_file:
                        received += len(event)
                        if received > max_bytes:
                            raise RequestEntityTooLarge(
                                f"the file is larger than the limit of {max_bytes} bytes (WB_MAX_UPLOAD_BYTES)"
                            )
                        buffer += event
                        digest.update(event)
                        while len(buffer) >= CHUNK_BYTES:
                            yield ds.UploadDatasetRequest(chunk=bytes(buffer[:CHUNK_BYTES]))
                            del buffer[:CHUNK_BYTES]
    except ParserError as error:
        raise ClientException(f"the upload is not a valid multipart/form-data body: {error}") from None
    if not seen_file:
        raise ClientException(f'the form has no field named "{FILE_FIELD}": send the dataset file in it')
    if buffer:
        yield ds.UploadDatasetRequest(chunk=bytes(buffer))
    # Only a body parsed to its end gets a trailer: the service registers nothing without one.
    yield ds.UploadDatasetRequest(trailer=ds.UploadTrailer(size_bytes=received, sha256=digest.hexdigest()))


async def upload_dataset(
    stub: "DatasetServiceAsyncStub", body: AsyncIterator[bytes], content_type: str, max_bytes: int
) -> ds.Dataset:
    """Sends the upload to the datasets service and returns the registered dataset."""
    requests = upload_requests(body, multipart_boundary(content_type), max_bytes)
    header = await anext(requests)  # a form without a file fails here, before any call starts
    failure: Exception | None = None

    async def stream() -> AsyncIterator[ds.UploadDatasetRequest]:
        nonlocal failure
        yield header
        try:
            async for request in requests:
                yield request
        except Exception as error:  # gRPC cancels the call when the iterator fails: remember why
            failure = error
            raise

    # The iterator form (not call.write) keeps the service's own status when it answers before
    # the end of the file (e.g. INVALID_ARGUMENT on line 3); write() would report INTERNAL instead.
    try:
        response: ds.UploadDatasetResponse = await stub.UploadDataset(stream(), timeout=UPLOAD_TIMEOUT_S)
    except (asyncio.CancelledError, grpc.aio.AioRpcError):
        if failure is not None:
            raise failure from None
        raise
    return response.dataset
