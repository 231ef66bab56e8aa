"""The annotations application: record a judgement (load -> decide -> append), list them, export them.

Commands follow load -> decide -> append, then wait for this service's own projection, so a read
right after a command sees its effect. Read-model queries run in worker threads, so a slow one
holds up neither the projector nor other calls.
"""

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from annotations_service.adapters.read_model import AnnotationsReadModel
from annotations_service.domain.annotation import Annotation, JudgedOutput
from annotations_service.domain.commands import ClearAnnotation, RecordAnnotation
from annotations_service.domain.errors import Conflict, InvalidInput, NotFound
from annotations_service.domain.export import CuratedOutput, export_kinds
from annotations_service.domain.export_formats import CuratedRecord, export_writer
from annotations_service.domain.history import HistoryEntry, history_entry
from annotations_service.domain.names import RESULT_SUBJECTS, record_subject
from annotations_service.domain.state import RecordAnnotations, decide, decide_clear, evolve
from eventlog import ConcurrencyConflict, EventStore, NewEvent, ProjectionRunner, load_aggregate
from servicehost.clock import Clock, utc_now
from workbench.annotations.v1.annotations_pb2 import AnnotationKind, ExportFormat
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
        state = await self._load(command.dataset_id, command.record_id)
        judged = await self._latest_output(command)
        # No new events: a retry of the change already stored, answered with the record as it is.
        after = await self._append(state, decide(state, command, judged, self.clock()))
        await self.projection.wait_for(after.version)
        key = (command.dataset_id, command.record_id, command.model_id)
        found = await asyncio.to_thread(self.read_model.annotation, *key)
        # None: cleared again in the meantime; answer with what was recorded.
        return found if found is not None else after.annotation(command.model_id)

    async def clear_annotation(self, command: ClearAnnotation) -> int:
        """Undo: removes the model's current mark on the record; returns the record's new version.

        FailedPrecondition when there is no mark; Conflict when the record changed since
        command.expected_version. The history keeps the cleared mark.
        """
        state = await self._load(command.dataset_id, command.record_id)
        after = await self._append(state, decide_clear(state, command, self.clock()))
        await self.projection.wait_for(after.version)
        return after.version

    async def history(self, dataset_id: str, record_id: str) -> list[HistoryEntry]:
        """Every change of the record's marks, oldest first, as the log holds them."""
        if not dataset_id or not record_id:
            raise InvalidInput("dataset_id and record_id are required")
        stored = await self.store.read(record_subject(dataset_id, record_id))
        return [entry for item in stored if (entry := history_entry(item.event, item.sequence)) is not None]

    async def _load(self, dataset_id: str, record_id: str) -> RecordAnnotations:
        if await asyncio.to_thread(self.read_model.is_deleted, dataset_id):
            raise NotFound(f"dataset {dataset_id!r} has been deleted; its records cannot be annotated")
        subject = record_subject(dataset_id, record_id)
        return await load_aggregate(self.store, subject, RecordAnnotations(dataset_id, record_id), evolve)

    async def list_annotations(self, dataset_id: str, record_ids: Sequence[str] = ()) -> list[Annotation]:
        """The current annotations of a dataset (of the given records only, if any), by record then model."""
        return await asyncio.to_thread(self.read_model.annotations, dataset_id, None, record_ids)

    async def export_dataset(
        self,
        dataset_id: str,
        kinds: Sequence[int],
        export_format: ExportFormat.ValueType = ExportFormat.EXPORT_FORMAT_JSONL,
    ) -> AsyncIterator[bytes]:
        """Yields the export in the given format, piece by piece: the curated (record, model) pairs
        in record order, read batch by batch from the datasets service, so memory stays bounded.

        kinds selects the annotation kinds (empty: golden and fixed); annotations of records the
        dataset lacks are left out. Raises InvalidInput for an unknown format or kind (and for
        openai_chat asked for wrong ones), NotFound for an unknown dataset, before anything is yielded.
        """
        wanted = export_kinds(list(kinds))
        label_studio = export_format == ExportFormat.EXPORT_FORMAT_LABEL_STUDIO
        models = await asyncio.to_thread(self.read_model.output_models, dataset_id) if label_studio else []
        writer = export_writer(export_format, wanted, models)
        head = writer.start()
        async for batch in self.records.record_batches(dataset_id):
            curated = await asyncio.to_thread(self._curated, dataset_id, batch, wanted, label_studio)
            # The head goes with the first batch: an unknown dataset fails before anything is sent.
            text, head = head + writer.write(curated), ""
            if text:
                yield text.encode()
        if text := head + writer.end():
            yield text.encode()

    def _curated(
        self, dataset_id: str, batch: Sequence[Record], kinds: frozenset[int], every_answer: bool
    ) -> list[CuratedRecord]:
        """The marks of a batch of records with the answers they judged (a worker thread's job)."""
        record_ids = [record.record_id for record in batch]
        by_record: dict[str, list[Annotation]] = {}
        for annotation in self.read_model.annotations(dataset_id, kinds, record_ids):
            by_record.setdefault(annotation.record_id, []).append(annotation)
        latest = self.read_model.outputs(dataset_id, [r for r in record_ids if r in by_record or every_answer])
        judged: dict[tuple[str, str], JudgedOutput | None] = {}
        for annotation in (a for marks in by_record.values() for a in marks):
            key = (annotation.record_id, annotation.model_id)
            output = latest.get(key)
            if annotation.run_id and (output is None or output.run_id != annotation.run_id):
                output = self.read_model.run_output(dataset_id, *key, annotation.run_id)
            judged[key] = output
        facts = self.read_model.run_facts([output.run_id for output in judged.values() if output is not None])
        answers: dict[str, dict[str, str]] = {}
        for (record_id, model_id), output in sorted(latest.items()):
            answers.setdefault(record_id, {})[model_id] = output.output_text
        return [
            CuratedRecord(
                dataset_id,
                record,
                [_curated_output(a, judged[(a.record_id, a.model_id)], facts) for a in by_record[record.record_id]],
                answers.get(record.record_id, {}) if every_answer else {},
            )
            for record in batch
            if record.record_id in by_record
        ]

    async def _latest_output(self, command: RecordAnnotation) -> JudgedOutput | None:
        """The output judged: that of the run the caller names, else the model's latest."""
        key = (command.dataset_id, command.record_id, command.model_id)
        read = functools.partial(self.read_model.run_output, *key, command.run_id)
        if not command.run_id:
            read = functools.partial(self.read_model.latest_output, *key)
        judged = await asyncio.to_thread(read)
        if judged is None:
            # The result may be stored but not yet projected (a user clicking as soon as it shows):
            # wait briefly for the read model to reach the newest result, then look again.
            newest = await self.store.last_sequence(RESULT_SUBJECTS)
            with contextlib.suppress(TimeoutError):
                await self.projection.wait_for(newest, _CATCH_UP_S)
            judged = await asyncio.to_thread(read)
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


def _curated_output(
    annotation: Annotation, judged: JudgedOutput | None, facts: dict[str, dict[str, object]]
) -> CuratedOutput:
    """What the export writes of a mark: a fix beside the model's answer, else the judged text."""
    fixed = annotation.kind == AnnotationKind.ANNOTATION_KIND_FIXED
    return CuratedOutput(
        model_id=annotation.model_id,
        kind=annotation.kind,
        answer=(judged.output_text if judged is not None else "") if fixed else annotation.output_text,
        fixed_text=annotation.output_text if fixed else "",
        annotator=annotation.annotator,
        note=annotation.note,
        run=facts.get(judged.run_id) if judged is not None else None,
    )
