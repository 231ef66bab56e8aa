"""Curation queries: the records of a dataset that pass a filter, a page at a time, and the counts.

Results do not say where a record stands in its dataset, so the record order comes from the
datasets service: read once per dataset (ids only are kept) and remembered, since a dataset's
records never change under its id. Read-model queries run in worker threads.
"""

import asyncio
from collections import OrderedDict
from dataclasses import dataclass, field

from annotations_service.adapters.curation import CurationReadModel
from annotations_service.application import RecordSource
from annotations_service.domain.curation import Counts, RecordFacts, RecordFilter, count, select
from annotations_service.domain.errors import InvalidInput

MAX_LIMIT = 1000
# Datasets whose record order is remembered (100k ids take a few MB).
_REMEMBERED_DATASETS = 16


@dataclass(frozen=True)
class RecordsPage:
    records: list[RecordFacts]  # in dataset order, or most-disagreed first for needs review
    total: int  # records that pass, before offset and limit


@dataclass(frozen=True)
class Stats:
    overall: Counts
    by_model: dict[str, Counts]


@dataclass
class RecordOrder:
    """The ids of each dataset's records in dataset order, read once from the datasets service."""

    records: RecordSource
    _known: OrderedDict[str, list[str]] = field(default_factory=OrderedDict)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    async def ids(self, dataset_id: str) -> list[str]:
        """Raises NotFound for a dataset the datasets service does not know."""
        async with self._locks.setdefault(dataset_id, asyncio.Lock()):
            if dataset_id not in self._known:
                self._known[dataset_id] = [
                    record.record_id async for batch in self.records.record_batches(dataset_id) for record in batch
                ]
                while len(self._known) > _REMEMBERED_DATASETS:
                    self._known.popitem(last=False)
            self._known.move_to_end(dataset_id)
            return self._known[dataset_id]


@dataclass
class CurationQueries:
    """Filters and counts over a dataset's records, their answers' disagreement and their marks."""

    read_model: CurationReadModel
    order: RecordOrder

    async def query_records(
        self, dataset_id: str, wanted: RecordFilter, model_id: str = "", q: str = "", offset: int = 0, limit: int = 100
    ) -> RecordsPage:
        """The records that pass the filter (of the named model only, if any) and hold q in their
        id or an answer (ignoring case): in dataset order, or most-disagreed first for needs review.

        Raises InvalidInput for a bad page, NotFound for an unknown dataset.
        """
        if offset < 0 or not 1 <= limit <= MAX_LIMIT:
            raise InvalidInput(
                f"offset must not be negative and limit must be from 1 to {MAX_LIMIT} "
                f"(got offset {offset}, limit {limit}); page through longer lists with offset"
            )
        order = await self.order.ids(dataset_id)
        if wanted is RecordFilter.EVERY and not q:
            # Every record passes: only the page's own facts are read (a page of a 10,000-record
            # dataset no longer reads the whole dataset's).
            page = order[offset : offset + limit]
            found = {item.record_id: item for item in await asyncio.to_thread(self.read_model.facts, dataset_id, page)}
            return RecordsPage([found.get(record_id, RecordFacts(record_id)) for record_id in page], len(order))
        if q:
            answering = await asyncio.to_thread(self.read_model.records_answering, dataset_id, q, model_id)
            needle = q.casefold()
            order = [record_id for record_id in order if needle in record_id.casefold() or record_id in answering]
        facts = await asyncio.to_thread(self.read_model.facts, dataset_id)
        passing = select(facts, order, wanted, model_id)
        return RecordsPage(passing[offset : offset + limit], len(passing))

    async def stats(self, dataset_id: str) -> Stats:
        """Counts of the dataset's records, overall (total: every record of the dataset) and per
        model (total: the records the model has answered), for every model with an answer or a mark.

        Raises NotFound for an unknown dataset.
        """
        order = await self.order.ids(dataset_id)
        known = set(order)
        facts = [item for item in await asyncio.to_thread(self.read_model.facts, dataset_id) if item.record_id in known]
        answered = await asyncio.to_thread(self.read_model.answered, dataset_id)
        models = sorted(set(answered) | {model for item in facts for model in item.marks})
        return Stats(
            overall=count(facts, len(order)),
            by_model={model: count(facts, answered.get(model, 0), model) for model in models},
        )
