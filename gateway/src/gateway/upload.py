"""Streams an upload into DatasetService.UploadDataset without holding the file.

The file arrives either as the "file" field of a multipart/form-data body (a browser's form) or as
the whole request body (`curl --data-binary @big.parquet -H 'Content-Type: ...'`). Either way it is
passed on as it arrives, in 256 KiB chunks, with the gRPC call's flow control pacing the sender: no
more than a chunk and one piece of the body is held at a time. Only a body that ended cleanly ends
the request stream normally (with a trailer: size and sha256); anything else cancels the call, so
the service never takes a truncated file for a whole one.
"""

import asyncio
import hashlib
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
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
MULTIPART = "multipart/form-data"
# A raw body without ?name= is named for its content type; the extension tells the service the format.
# Any other type gets a name without one: the service then tells the format from the content.
NAME_FOR_TYPE = {
    "application/x-ndjson": "upload.jsonl",
    "application/jsonl": "upload.jsonl",
    "application/json": "upload.jsonl",
    "text/csv": "upload.csv",
    "application/vnd.apache.parquet": "upload.parquet",
    "application/x-parquet": "upload.parquet",
}
UNTYPED_NAME = "upload"


@dataclass(frozen=True, slots=True)
class UploadedFile:
    """A file on its way in: the name it was sent under and its bytes as they arrive."""

    name: str
    data: AsyncIterator[bytes]


async def _file_field(body: AsyncIterator[bytes], boundary: str) -> AsyncGenerator[str | bytes, None]:
    """The "file" field's file name, then its bytes; ends only once the whole body has been parsed."""
    seen_file = in_file = False
    try:
        with PushMultipartParser(boundary, max_header_count=16, max_segment_count=64) as parser:
            async for data in body:
                for event in parser.parse(data):
                    if isinstance(event, MultipartSegment):
                        in_file = event.name == FILE_FIELD and not seen_file
                        if in_file:
                            seen_file = True
                            yield event.filename or ""
                    elif event is None:
                        in_file = False
                    elif in_file:
                        yield event  # a new object on every call: the parser keeps no reference to it
    except ParserError as error:
        raise ClientException(f"the upload is not a valid multipart/form-data body: {error}") from None
    if not seen_file:
        raise ClientException(f'the form has no field named "{FILE_FIELD}": send the dataset file in it')


async def _file_bytes(parts: AsyncGenerator[str | bytes, None]) -> AsyncIterator[bytes]:
    async for part in parts:
        if not isinstance(part, str):
            yield part


async def received_file(body: AsyncIterator[bytes], content_type: str, name: str) -> UploadedFile:
    """The file of a multipart body (its "file" field) or the raw body itself; `name` wins when given.

    A form without a file field fails here, before any call to the service starts.
    """
    kind, options = parse_options_header(content_type)
    if kind != MULTIPART:
        return UploadedFile(name or NAME_FOR_TYPE.get(kind, UNTYPED_NAME), body)
    if not options.get("boundary"):
        raise ClientException("the multipart/form-data body names no boundary in its Content-Type")
    parts = _file_field(body, str(options["boundary"]))
    file_name = await anext(parts)
    assert isinstance(file_name, str)  # the field's name comes before its bytes
    return UploadedFile(name or file_name, _file_bytes(parts))


async def upload_requests(
    file: UploadedFile, skip_invalid: bool, max_bytes: int
) -> AsyncGenerator[ds.UploadDatasetRequest, None]:
    """The header, the file's bytes in chunks, then the trailer once the whole body has arrived."""
    # The datasets service makes the name safe (one rule for every client).
    yield ds.UploadDatasetRequest(header=ds.UploadHeader(name=file.name, skip_invalid=skip_invalid))
    buffer = bytearray()
    received = 0
    digest = hashlib.sha256()
    async for data in file.data:
        received += len(data)
        if received > max_bytes:
            raise RequestEntityTooLarge(f"the file is larger than the limit of {max_bytes} bytes (WB_MAX_UPLOAD_BYTES)")
        buffer += data
        digest.update(data)
        while len(buffer) >= CHUNK_BYTES:
            yield ds.UploadDatasetRequest(chunk=bytes(buffer[:CHUNK_BYTES]))
            del buffer[:CHUNK_BYTES]
    if buffer:
        yield ds.UploadDatasetRequest(chunk=bytes(buffer))
    # Only a body read to its end gets a trailer: the service registers nothing without one.
    yield ds.UploadDatasetRequest(trailer=ds.UploadTrailer(size_bytes=received, sha256=digest.hexdigest()))


async def upload_dataset(
    stub: "DatasetServiceAsyncStub", file: UploadedFile, skip_invalid: bool, max_bytes: int
) -> ds.UploadDatasetResponse:
    """Sends the upload to the datasets service: the registered dataset, or the one already holding it."""
    failure: Exception | None = None

    async def stream() -> AsyncIterator[ds.UploadDatasetRequest]:
        nonlocal failure
        try:
            async for request in upload_requests(file, skip_invalid, max_bytes):
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
    return response
