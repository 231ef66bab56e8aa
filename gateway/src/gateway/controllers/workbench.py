"""The workbench's results view: one call that joins what three services know about a dataset."""

import asyncio

from litestar import Controller, get
from litestar.params import Parameter

from gateway.clients import RPC_TIMEOUT_S, Clients
from gateway.results import WorkbenchResults, merge_results
from workbench.annotations.v1 import annotations_pb2 as ann
from workbench.datasets.v1 import datasets_pb2 as ds
from workbench.inference.v1 import inference_pb2 as inf

MAX_PAGE = 1000


async def read_records(clients: Clients, dataset_id: str, offset: int, limit: int | None) -> list[ds.Record]:
    request = ds.ReadRecordsRequest(dataset_id=dataset_id, offset=offset, limit=limit or 0)
    return [record async for batch in clients.datasets.ReadRecords(request) for record in batch.records]


class WorkbenchController(Controller):
    path = "/workbench"
    tags = ["workbench"]

    @get("/results", operation_id="getWorkbenchResults")
    async def results(
        self,
        clients: Clients,
        dataset_id: str,
        offset: int = Parameter(default=0, ge=0),
        limit: int | None = Parameter(default=None, ge=1, le=MAX_PAGE, description="records per page; unset: all"),
    ) -> WorkbenchResults:
        """Records with every model's answer and the annotations; `differs` marks disagreement."""
        dataset, records, results, annotations, runs = await asyncio.gather(
            clients.datasets.GetDataset(ds.GetDatasetRequest(dataset_id=dataset_id), timeout=RPC_TIMEOUT_S),
            read_records(clients, dataset_id, offset, limit),
            clients.inference.ListResults(inf.ListResultsRequest(dataset_id=dataset_id), timeout=RPC_TIMEOUT_S),
            clients.annotations.ListAnnotations(
                ann.ListAnnotationsRequest(dataset_id=dataset_id), timeout=RPC_TIMEOUT_S
            ),
            clients.inference.ListRuns(inf.ListRunsRequest(dataset_id=dataset_id), timeout=RPC_TIMEOUT_S),
        )
        return merge_results(
            dataset.dataset, records, results.results, annotations.annotations, runs.runs, offset=offset, limit=limit
        )
