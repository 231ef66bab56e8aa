"""The annotations application: load a record's events -> decide -> append; queries; exports."""

import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import UTC
from typing import Protocol

from sqlalchemy import Engine

from annotations_service.adapters import read_model
from annotations_service.adapters.tables import AnnotationRow
from annotations_service.domain.commands import JudgedOutput, RecordAnnotation
from annotations_service.domain.errors import Conflict
from annotations_service.domain.export import export_kinds, export_line
from annotations_service.domain.state import Decision, RecordAnnotations, decide, fold
from eventlog import ConcurrencyConflict, EventLog, ProjectionRunner, token
from workbench.datasets.v1.datasets_pb2 import Record

RESULT_SUBJECTS = "wb.results.>"
_CATCH_UP_S = 3.0


class RecordSource(Protocol):
    """Where the records of a dataset come from (the datasets service), in file order."""

    def record_batches(self, dataset_id: str) -> AsyncIterator[Sequence[Record]]: ...


def record_subject(dataset_id: str, record_id: str) -> str:
    """The subject of a record's annotation events."""
    return f"wb.annotations.{dataset_id}.{token(record_id)}"


class AnnotationsApp:
    """Records judgements on model outputs, lists them, and exports the curated ones."""

    def __init__(self, events: EventLog, runner: ProjectionRunner, engine: Engine, records: RecordSource) -> None:
        self.events = events
        self.runner = runner
        self.engine = engine
        self.records = records

    async def record_annotation(self, command: RecordAnnotation) -> AnnotationRow:
        """Records a judgement and returns the annotation as the read model now holds it.

        Raises InvalidInput, FailedPrecondition (golden/wrong on a model without a result), or
        Conflict when the record's annotations changed since command.expected_version (or since
        they were loaded here): nothing is overwritten, the caller reloads and tries again.
        A retry of the same command with the same expected_version is a no-op.
        """
        subject = record_subject(command.dataset_id, command.record_id)
        stored = await self.events.read(subject)
        state = fold(
            RecordAnnotations(command.dataset_id, command.record_id),
            [(event.sequence, event.event) for event in stored],
        )
        judged = await self._latest_output(command)
        decision = decide(state, command, judged)
        if decision.already_recorded:
            sequence = state.version
        else:
            sequence = await self._append(subject, decision)
        await self.runner.wait_for(sequence)
        row = read_model.annotation(self.engine, command.dataset_id, command.record_id, command.model_id)
        if row is None:  # cleared again in the meantime: answer with what was recorded
            event = decision.event
            row = AnnotationRow(
                dataset_id=event.dataset_id,
                record_id=event.record_id,
                model_id=event.model_id,
                kind=event.kind,
                output_text=event.output_text,
                note=event.note,
                annotator=event.annotator,
                source=event.source,
                version=sequence,
                recorded_at=event.recorded_at.ToDatetime(tzinfo=UTC),
            )
        return row

    async def _latest_output(self, command: RecordAnnotation) -> JudgedOutput | None:
        where = (self.engine, command.dataset_id, command.record_id, command.model_id)
        judged = read_model.latest_output(*where)
        if judged is None:
            # The result may be stored but not yet projected (a user clicking as soon as it shows):
            # wait briefly for the read model to reach the newest result, then look again.
            newest = await self.events.last_sequence(RESULT_SUBJECTS)
            with contextlib.suppress(TimeoutError):
                await self.runner.wait_for(newest, _CATCH_UP_S)
            judged = read_model.latest_output(*where)
        return judged

    async def _append(self, subject: str, decision: Decision) -> int:
        try:
            return await self.events.append(
                subject, decision.event, msg_id=decision.msg_id, expected_sequence=decision.expected_sequence
            )
        except ConcurrencyConflict:
            raise Conflict(
                f"someone else changed the annotations of record {decision.event.record_id!r} just now: "
                "reload them and try again"
            ) from None

    def list_annotations(self, dataset_id: str, record_ids: Sequence[str] = ()) -> list[AnnotationRow]:
        """The current annotations of a dataset (of the given records only, if any), by record then model."""
        return read_model.annotations(self.engine, dataset_id, record_ids=record_ids)

    async def export_dataset(self, dataset_id: str, kinds: list[int]) -> AsyncIterator[bytes]:
        """Yields the export as JSONL chunks: one line per curated (record, model), in record order.

        kinds selects the annotation kinds (empty: golden and fixed). The record inputs are read
        from the datasets service; annotations of records the dataset lacks are left out.
        """
        wanted = export_kinds(kinds)
        by_record: dict[str, list[AnnotationRow]] = {}
        for row in read_model.annotations(self.engine, dataset_id, wanted):
            by_record.setdefault(row.record_id, []).append(row)
        async for batch in self.records.record_batches(dataset_id):
            lines = [
                export_line(dataset_id, record, row.model_id, row.kind, row.output_text)
                for record in batch
                for row in by_record.get(record.record_id, [])
            ]
            if lines:
                yield "".join(lines).encode()
