"""The annotations application: record a judgement (load -> decide -> append), list them, export them.

Commands follow load -> decide -> append, then wait for this service's own projection, so a read
right after a command sees its effect. Read-model queries run in worker threads, so a slow one
holds up neither the projector nor other calls.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from annotations_service.adapters.read_model import AnnotationsReadModel
from annotations_service.domain.annotation import Annotation, JudgedOutput
from annotations_service.domain.commands import RecordAnnotation
from annotations_service.domain.errors import Conflict, NotFound
from annotations_service.domain.export import export_kinds, export_line
from annotations_service.domain.names import RESULT_SUBJECTS, record_subject
from annotations_service.domain.state import RecordAnnotations, decide, evolve
from eventlog import ConcurrencyConflict, EventStore, NewEvent, ProjectionRunner, load_aggregate
from servicehost.clock import Clock, utc_now
from workbench.datasets.v1.datasets_pb2 import Record

# How long a judgement waits for a result that is stored but not projected yet.
_CATCH_UP_S = 3.0


class RecordSource(Protocol):
    """Where the records of a dataset come from (the datasets service), in file order."""

    def record_batches(self, dataset_id: str) -> AsyncIterator[Sequence[Record]]: ...


@dataclass
class AnnotationsApplication:
    """Records judgements on model outputs, lists them, and exports the curated ones."""

    store: EventStore
    projection: ProjectionRunner
    read_model: AnnotationsReadModel
    records: RecordSource
    clock: Clock = utc_now

    async def record_annotation(self, command: RecordAnnotation) -> Annotation:
        """Records a judgement, stamped with the clock's time, and returns the annotation as the
        read model now holds it.

        Raises InvalidInput, FailedPrecondition (golden/wrong on a model without a result), or
        Conflict when the record's annotations changed since command.expected_version (or since
        they were loaded here): nothing is overwritten, the caller reloads and tries again.
        A retry of the same command with the same expected_version is a no-op.
        """
        if await asyncio.to_thread(self.read_model.is_deleted, command.dataset_id):
            raise NotFound(f"dataset {command.dataset_id!r} has been deleted; its records cannot be annotated")
        state = await load_aggregate(
            self.store,
            record_subject(command.dataset_id, command.record_id),
            RecordAnnotations(command.dataset_id, command.record_id),
            evolve,
        )
        judged = await self._latest_output(command)
        # No new events: a retry of the change already stored, answered with the record as it is.
        after = await self._append(state, decide(state, command, judged, self.clock()))
        await self.projection.wait_for(after.version)
        key = (command.dataset_id, command.record_id, command.model_id)
        found = await asyncio.to_thread(self.read_model.annotation, *key)
        # None: cleared again in the meantime; answer with what was recorded.
        return found if found is not None else after.annotation(command.model_id)

    async def list_annotations(self, dataset_id: str, record_ids: Sequence[str] = ()) -> list[Annotation]:
        """The current annotations of a dataset (of the given records only, if any), by record then model."""
        return await asyncio.to_thread(self.read_model.annotations, dataset_id, None, record_ids)

    async def export_dataset(self, dataset_id: str, kinds: Sequence[int]) -> AsyncIterator[bytes]:
        """Yields the export as JSONL chunks: one line per curated (record, model), in record order.

        kinds selects the annotation kinds (empty: golden and fixed). The record inputs are read
        from the datasets service; annotations of records the dataset lacks are left out.
        """
        wanted = export_kinds(list(kinds))
        by_record: dict[str, list[Annotation]] = {}
        for annotation in await asyncio.to_thread(self.read_model.annotations, dataset_id, wanted):
            by_record.setdefault(annotation.record_id, []).append(annotation)
        runs = await asyncio.to_thread(self.read_model.judged_runs, dataset_id)
        async for batch in self.records.record_batches(dataset_id):
            lines = [
                export_line(
                    dataset_id,
                    record,
                    annotation.model_id,
                    annotation.kind,
                    annotation.output_text,
                    runs.get((record.record_id, annotation.model_id)),
                )
                for record in batch
                for annotation in by_record.get(record.record_id, [])
            ]
            if lines:
                yield "".join(lines).encode()

    async def _latest_output(self, command: RecordAnnotation) -> JudgedOutput | None:
        key = (command.dataset_id, command.record_id, command.model_id)
        judged = await asyncio.to_thread(self.read_model.latest_output, *key)
        if judged is None:
            # The result may be stored but not yet projected (a user clicking as soon as it shows):
            # wait briefly for the read model to reach the newest result, then look again.
            newest = await self.store.last_sequence(RESULT_SUBJECTS)
            with contextlib.suppress(TimeoutError):
                await self.projection.wait_for(newest, _CATCH_UP_S)
            judged = await asyncio.to_thread(self.read_model.latest_output, *key)
        return judged

    async def _append(self, state: RecordAnnotations, new_events: list[NewEvent]) -> RecordAnnotations:
        """Appends the decided events; returns the record's state after them."""
        for new in new_events:
            try:
                sequence = await self.store.append(new)
            except ConcurrencyConflict:
                raise Conflict(
                    f"someone else changed the annotations of record {state.record_id!r} just now: "
                    "reload them and try again"
                ) from None
            state = evolve(state, new.event, sequence)
        return state
