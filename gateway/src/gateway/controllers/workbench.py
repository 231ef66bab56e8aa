"""The workbench's results view: one call that joins what three services know about a dataset."""

import asyncio

from litestar import Controller, get
from litestar.exceptions import ClientException
from litestar.params import Parameter

from gateway.access import Role
from gateway.auth import ROLE_OPT
from gateway.clients import Clients
from gateway.curation import RECORD_FILTERS, StatsView, fetch_stats
from gateway.integers import INT64_MAX
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


async def records_by_id(clients: Clients, dataset_id: str, record_ids: list[str]) -> list[ds.Record]:
    """The records with these ids, in this order.

    The datasets API reads records by position, and a queried record names its id only: the
    dataset is streamed from its start and the stream dropped once every wanted record has passed.
    """
    wanted = set(record_ids)
    found: dict[str, ds.Record] = {}
    stream = clients.datasets.ReadRecords(ds.ReadRecordsRequest(dataset_id=dataset_id))
    async for batch in stream:
        found.update((record.record_id, record) for record in batch.records if record.record_id in wanted)
        if len(found) == len(wanted):
            stream.cancel()
            break
    return [found[record_id] for record_id in record_ids if record_id in found]


async def page_disagreements(
    clients: Clients, dataset_id: str, offset: int, limit: int | None
) -> dict[str, ann.Disagreement]:
    """Record id -> disagreement of the unfiltered page (asked a thousand records at a time)."""
    found: dict[str, ann.Disagreement] = {}
    while limit is None or len(found) < limit:
        size = MAX_PAGE if limit is None else min(MAX_PAGE, limit - len(found))
        request = ann.QueryRecordsRequest(dataset_id=dataset_id, offset=offset + len(found), limit=size)
        reply = await clients.annotations.QueryRecords(request)
        found.update((record.record_id, record.disagreement) for record in reply.records)
        if len(reply.records) < size:
            break
    return found


class WorkbenchController(Controller):
    path = "/workbench"
    tags = ["workbench"]

    @get("/results", operation_id="getWorkbenchResults", opt={ROLE_OPT: Role.VIEWER})
    async def results(
        self,
        clients: Clients,
        dataset_id: str,
        offset: int = Parameter(default=0, ge=0, le=INT64_MAX),
        limit: int | None = Parameter(default=None, ge=1, le=MAX_PAGE, description="records per page; unset: all"),
        record_filter: str | None = Parameter(
            query="filter", default=None, description="differences, golden, fixed, wrong or needs_review"
        ),
        model_id: str = Parameter(default="", description="only this model's marks and answers count"),
        q: str = Parameter(default="", description="text in the record id or an answer, any case"),
    ) -> WorkbenchResults:
        """Records with every model's answer, the annotations and the disagreement; with a filter,
        model_id or q, only the records that pass (a page of at most 1000)."""
        if record_filter is not None and record_filter not in RECORD_FILTERS:
            raise ClientException(f"unknown filter {record_filter!r}: use one of {', '.join(RECORD_FILTERS)}")
        if record_filter or model_id or q:
            return await self._filtered(
                clients, dataset_id, RECORD_FILTERS.get(record_filter or ""), model_id, q, offset, limit or MAX_PAGE
            )
        dataset, (records, results, annotations), runs, disagreements = await asyncio.gather(
            clients.datasets.GetDataset(ds.GetDatasetRequest(dataset_id=dataset_id)),
            page_contents(clients, dataset_id, offset, limit),
            clients.inference.ListRuns(inf.ListRunsRequest(dataset_id=dataset_id)),
            page_disagreements(clients, dataset_id, offset, limit),
        )
        return merge_results(
            dataset.dataset, records, results, annotations, runs.runs, offset, limit, disagreements=disagreements
        )

    @get("/stats", operation_id="getWorkbenchStats", opt={ROLE_OPT: Role.VIEWER})
    async def stats(self, clients: Clients, dataset_id: str) -> StatsView:
        """Counts of the dataset's records: total, golden, fixed, wrong, needs_review, differing; per model too."""
        return await fetch_stats(clients, dataset_id)

    @staticmethod
    async def _filtered(
        clients: Clients,
        dataset_id: str,
        wanted: "ann.RecordFilter.ValueType | None",
        model_id: str,
        q: str,
        offset: int,
        limit: int,
    ) -> WorkbenchResults:
        request = ann.QueryRecordsRequest(
            dataset_id=dataset_id,
            filter=ann.RECORD_FILTER_UNSPECIFIED if wanted is None else wanted,
            model_id=model_id,
            q=q,
            offset=offset,
            limit=limit,
        )
        dataset, page, runs = await asyncio.gather(
            clients.datasets.GetDataset(ds.GetDatasetRequest(dataset_id=dataset_id)),
            clients.annotations.QueryRecords(request),
            clients.inference.ListRuns(inf.ListRunsRequest(dataset_id=dataset_id)),
        )
        ids = [record.record_id for record in page.records]
        records: list[ds.Record] = []
        results: list[inf.Result] = []
        annotations: list[ann.Annotation] = []
        if ids:  # empty ids would mean "every record"
            records, results, annotations = await asyncio.gather(
                records_by_id(clients, dataset_id, ids),
                list_results(clients, dataset_id, ids),
                list_annotations(clients, dataset_id, ids),
            )
        disagreements = {record.record_id: record.disagreement for record in page.records}
        return merge_results(
            dataset.dataset, records, results, annotations, runs.runs, offset, limit, disagreements, page.total
        )
