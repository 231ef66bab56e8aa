"""The workbench's results view: one call that joins what three services know about a dataset."""

import asyncio

from litestar import Controller, get
from litestar.params import Parameter

from gateway.clients import Clients
from gateway.results import WorkbenchResults, merge_results
from workbench.annotations.v1 import annotations_pb2 as ann
from workbench.datasets.v1 import datasets_pb2 as ds
from workbench.inference.v1 import inference_pb2 as inf

MAX_PAGE = 1000


async def read_records(clients: Clients, dataset_id: str, offset: int, limit: int | None) -> list[ds.Record]:
    request = ds.ReadRecordsRequest(dataset_id=dataset_id, offset=offset, limit=limit or 0)
    return [record async for batch in clients.datasets.ReadRecords(request) for record in batch.records]


async def list_results(clients: Clients, dataset_id: str, record_ids: list[str]) -> list[inf.Result]:
    """Every result for these records (every record: empty record_ids), of every run of the dataset."""
    request = inf.ListResultsRequest(dataset_id=dataset_id, record_ids=record_ids)
    reply = await clients.inference.ListResults(request)
    return list(reply.results)


async def list_annotations(clients: Clients, dataset_id: str, record_ids: list[str]) -> list[ann.Annotation]:
    """The current annotations of these records (every record: empty record_ids)."""
    request = ann.ListAnnotationsRequest(dataset_id=dataset_id, record_ids=record_ids)
    reply = await clients.annotations.ListAnnotations(request)
    return list(reply.annotations)


async def page_contents(
    clients: Clients, dataset_id: str, offset: int, limit: int | None
) -> tuple[list[ds.Record], list[inf.Result], list[ann.Annotation]]:
    """The page's records with their results and annotations only; without a limit, all at once.

    A page asks for its own records' results and annotations: a dataset's every result of every run
    can be far more than a page needs (and more than one gRPC message holds).
    """
    if limit is None:
        return await asyncio.gather(
            read_records(clients, dataset_id, offset, None),
            list_results(clients, dataset_id, []),
            list_annotations(clients, dataset_id, []),
        )
    records = await read_records(clients, dataset_id, offset, limit)
    if not records:  # past the end: no record ids, and empty ones would mean "every record"
        return records, [], []
    ids = [r.record_id for r in records]
    results, annotations = await asyncio.gather(
        list_results(clients, dataset_id, ids), list_annotations(clients, dataset_id, ids)
    )
    return records, results, annotations


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
        dataset, (records, results, annotations), runs = await asyncio.gather(
            clients.datasets.GetDataset(ds.GetDatasetRequest(dataset_id=dataset_id)),
            page_contents(clients, dataset_id, offset, limit),
            clients.inference.ListRuns(inf.ListRunsRequest(dataset_id=dataset_id)),
        )
        return merge_results(dataset.dataset, records, results, annotations, runs.runs, offset=offset, limit=limit)
