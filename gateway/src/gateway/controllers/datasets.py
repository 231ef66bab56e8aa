"""Datasets: upload a file (JSONL, CSV, Parquet), list, get, rename and delete them, page through records."""

from collections.abc import AsyncIterator
from typing import Any

import msgspec
from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.params import Parameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from gateway.access import Role
from gateway.auth import ROLE_OPT
from gateway.clients import Clients
from gateway.integers import INT64_MAX
from gateway.settings import GatewaySettings
from gateway.upload import received_file, upload_dataset
from gateway.views import DatasetView, RecordsPage, UploadView, dataset_view, record_view, upload_view
from workbench.datasets.v1 import datasets_pb2 as ds

# Room for the multipart envelope (boundaries, part headers, other small fields) around the file.
UPLOAD_SLACK_BYTES = 1024 * 1024
MAX_RECORDS_PAGE = 1000


async def limited(body: AsyncIterator[bytes], limit: int) -> AsyncIterator[bytes]:
    received = 0
    async for data in body:
        received += len(data)
        if received > limit:
            raise RequestEntityTooLarge(f"the upload is larger than the limit of {limit} bytes")
        yield data


class RenameBody(msgspec.Struct, forbid_unknown_fields=True):
    name: str


class DatasetController(Controller):
    path = "/datasets"
    tags = ["datasets"]

    # The body limit is enforced while streaming (below), from the settings, rather than by Litestar.
    @post("/upload", operation_id="uploadDataset", opt={ROLE_OPT: Role.ADMIN}, request_max_body_size=None)
    async def upload(
        self,
        request: Request[Any, Any, Any],
        clients: Clients,
        settings: GatewaySettings,
        name: str = Parameter(default="", description="the file name; default: the form's, or upload.<type>"),
        skip_invalid: bool = Parameter(default=False, description="register the valid records, report the others"),
    ) -> Response[UploadView]:
        """Registers a dataset sent as multipart/form-data (field "file") or as the raw request body.

        201 with the new dataset; 200 when a live dataset already holds the same content.
        """
        limit = settings.max_upload_bytes + UPLOAD_SLACK_BYTES
        if (request.content_length or 0) > limit:
            raise RequestEntityTooLarge(f"the upload is larger than the limit of {settings.max_upload_bytes} bytes")
        file = await received_file(limited(request.stream(), limit), request.headers.get("content-type", ""), name)
        reply = await upload_dataset(clients.datasets, file, skip_invalid, settings.max_upload_bytes)
        return Response(upload_view(reply), status_code=HTTP_200_OK if reply.already_registered else HTTP_201_CREATED)

    @get("/", operation_id="listDatasets", opt={ROLE_OPT: Role.VIEWER})
    async def list_datasets(self, clients: Clients) -> dict[str, list[DatasetView]]:
        reply = await clients.datasets.ListDatasets(ds.ListDatasetsRequest())
        return {"datasets": [dataset_view(d) for d in reply.datasets]}

    @get("/{dataset_id:str}", operation_id="getDataset", opt={ROLE_OPT: Role.VIEWER})
    async def get_dataset(self, clients: Clients, dataset_id: str) -> dict[str, DatasetView]:
        reply = await clients.datasets.GetDataset(ds.GetDatasetRequest(dataset_id=dataset_id))
        return {"dataset": dataset_view(reply.dataset)}

    @patch("/{dataset_id:str}", operation_id="renameDataset", opt={ROLE_OPT: Role.ADMIN})
    async def rename(self, clients: Clients, dataset_id: str, data: RenameBody) -> dict[str, DatasetView]:
        """Renames the dataset (the datasets service makes the name safe, as for an upload)."""
        reply = await clients.datasets.RenameDataset(ds.RenameDatasetRequest(dataset_id=dataset_id, name=data.name))
        return {"dataset": dataset_view(reply.dataset)}

    @delete("/{dataset_id:str}", operation_id="deleteDataset", opt={ROLE_OPT: Role.ADMIN})
    async def delete_dataset(self, clients: Clients, dataset_id: str) -> None:
        """Deletes the dataset and its stored records; its runs, results and annotations are hidden."""
        await clients.datasets.DeleteDataset(ds.DeleteDatasetRequest(dataset_id=dataset_id))

    @get("/{dataset_id:str}/records", operation_id="listRecords", opt={ROLE_OPT: Role.VIEWER})
    async def list_records(
        self,
        clients: Clients,
        dataset_id: str,
        offset: int = Parameter(default=0, ge=0, le=INT64_MAX),
        limit: int = Parameter(default=50, ge=1, le=MAX_RECORDS_PAGE),
        q: str = Parameter(default="", description="only records whose id, input or metadata hold this text"),
    ) -> RecordsPage:
        """One page of the dataset's records, in file order, each with its metadata and sampling."""
        request = ds.ListRecordsRequest(dataset_id=dataset_id, offset=offset, limit=limit, q=q)
        reply = await clients.datasets.ListRecords(request)
        return RecordsPage([record_view(r) for r in reply.records], total=reply.total, offset=offset, limit=limit)
