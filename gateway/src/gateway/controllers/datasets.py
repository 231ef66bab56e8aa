"""Datasets: upload a JSONL file, list what has been registered."""

from collections.abc import AsyncIterator
from typing import Any

from litestar import Controller, Request, get, post
from litestar.exceptions.http_exceptions import RequestEntityTooLarge

from gateway.clients import Clients
from gateway.settings import GatewaySettings
from gateway.upload import upload_dataset
from gateway.views import DatasetView, dataset_view
from workbench.datasets.v1 import datasets_pb2 as ds

# Room for the multipart envelope (boundaries, part headers, other small fields) around the file.
UPLOAD_SLACK_BYTES = 1024 * 1024


async def limited(body: AsyncIterator[bytes], limit: int) -> AsyncIterator[bytes]:
    received = 0
    async for data in body:
        received += len(data)
        if received > limit:
            raise RequestEntityTooLarge(f"the upload is larger than the limit of {limit} bytes")
        yield data


class DatasetController(Controller):
    path = "/datasets"
    tags = ["datasets"]

    # The body limit is enforced while streaming (below), from the settings, rather than by Litestar.
    @post("/upload", operation_id="uploadDataset", request_max_body_size=None)
    async def upload(
        self, request: Request[Any, Any, Any], clients: Clients, settings: GatewaySettings
    ) -> dict[str, DatasetView]:
        """Registers a JSONL dataset sent as multipart/form-data in the field "file"."""
        limit = settings.max_upload_bytes + UPLOAD_SLACK_BYTES
        if (request.content_length or 0) > limit:
            raise RequestEntityTooLarge(f"the upload is larger than the limit of {settings.max_upload_bytes} bytes")
        body = limited(request.stream(), limit)
        dataset = await upload_dataset(
            clients.datasets, body, request.headers.get("content-type", ""), settings.max_upload_bytes
        )
        return {"dataset": dataset_view(dataset)}

    @get("/", operation_id="listDatasets")
    async def list_datasets(self, clients: Clients) -> dict[str, list[DatasetView]]:
        reply = await clients.datasets.ListDatasets(ds.ListDatasetsRequest())
        return {"datasets": [dataset_view(d) for d in reply.datasets]}
