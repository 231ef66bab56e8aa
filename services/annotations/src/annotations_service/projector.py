"""The annotations read model, folded from the log: latest outputs (from results) and annotations.

The service learns about model outputs only from the inference context's ResultRecorded events.
Dropping every row and replaying from sequence 1 gives the same tables.
"""

from collections.abc import Sequence
from datetime import UTC

from sqlalchemy import Engine
from sqlmodel import Session, col, delete, update

from annotations_service.adapters.tables import AnnotationRow, OutputRow
from eventlog import EventLog, ProjectionRunner, StoredEvent
from workbench.annotations.v1.annotations_pb2 import AnnotationCleared, AnnotationRecorded
from workbench.inference.v1.inference_pb2 import ResultRecorded

SUBJECTS = ("wb.results.>", "wb.annotations.>")


class AnnotationsProjection:
    name = "annotations"
    subjects: Sequence[str] = SUBJECTS

    def apply(self, session: Session, event: StoredEvent) -> None:
        message = event.event
        if isinstance(message, ResultRecorded):
            self._result(session, event.sequence, message)
        elif isinstance(message, AnnotationRecorded):
            self._recorded(session, event.sequence, message)
        elif isinstance(message, AnnotationCleared):
            self._cleared(session, event.sequence, message)

    def clear(self, session: Session) -> None:
        session.exec(delete(OutputRow))
        session.exec(delete(AnnotationRow))

    @staticmethod
    def _result(session: Session, sequence: int, event: ResultRecorded) -> None:
        # Later results (a re-run) replace earlier ones: the latest output is what people judge.
        row = session.get(OutputRow, (event.dataset_id, event.record_id, event.model_id)) or OutputRow(
            dataset_id=event.dataset_id,
            record_id=event.record_id,
            model_id=event.model_id,
            run_id="",
            output_text="",
            sequence=0,
        )
        row.run_id = event.run_id
        row.output_text = event.output_text
        row.error = event.error
        row.sequence = sequence
        session.add(row)

    def _recorded(self, session: Session, sequence: int, event: AnnotationRecorded) -> None:
        row = session.get(AnnotationRow, (event.dataset_id, event.record_id, event.model_id)) or AnnotationRow(
            dataset_id=event.dataset_id,
            record_id=event.record_id,
            model_id=event.model_id,
            kind=0,
            output_text="",
            version=0,
        )
        row.kind = event.kind
        row.output_text = event.output_text
        row.note = event.note
        row.annotator = event.annotator
        row.source = event.source
        row.recorded_at = event.recorded_at.ToDatetime(tzinfo=UTC) if event.HasField("recorded_at") else None
        session.add(row)
        self._advance(session, event.dataset_id, event.record_id, sequence)

    def _cleared(self, session: Session, sequence: int, event: AnnotationCleared) -> None:
        row = session.get(AnnotationRow, (event.dataset_id, event.record_id, event.model_id))
        if row is not None:
            session.delete(row)
        self._advance(session, event.dataset_id, event.record_id, sequence)

    @staticmethod
    def _advance(session: Session, dataset_id: str, record_id: str, sequence: int) -> None:
        # The version belongs to the record, so every model's row of the record moves on with it.
        session.flush()
        session.exec(
            update(AnnotationRow)
            .where(col(AnnotationRow.dataset_id) == dataset_id, col(AnnotationRow.record_id) == record_id)
            .values(version=sequence)
        )


def projection_runner(events: EventLog, engine: Engine) -> ProjectionRunner:
    """The runner that keeps the read model in engine up to date with the log."""
    return ProjectionRunner(events, engine, AnnotationsProjection())
