"""What the read model answers: the current annotation of an output, and the output being judged."""

from dataclasses import dataclass
from datetime import datetime

from eventlog.events import from_timestamp
from workbench.annotations.v1.annotations_pb2 import AnnotationKind, AnnotationRecorded


@dataclass(frozen=True, slots=True)
class Annotation:
    """The current judgement of one model's output for one record.

    version: the sequence of the record's last annotation event (any model): what a writer expects.
    """

    dataset_id: str
    record_id: str
    model_id: str
    kind: AnnotationKind.ValueType
    output_text: str
    note: str
    annotator: str
    source: str
    version: int
    recorded_at: datetime | None
    run_id: str = ""  # the run whose result was judged ("" for a FIXED mark on a record without one)


def recorded_annotation(event: AnnotationRecorded, version: int) -> Annotation:
    """The annotation an AnnotationRecorded event sets, at the record's version."""
    return Annotation(
        dataset_id=event.dataset_id,
        record_id=event.record_id,
        model_id=event.model_id,
        kind=event.kind,
        output_text=event.output_text,
        note=event.note,
        annotator=event.annotator,
        source=event.source,
        version=version,
        recorded_at=from_timestamp(event.recorded_at),
        run_id=event.run_id,
    )


@dataclass(frozen=True, slots=True)
class JudgedOutput:
    """A model's output for a record, as the results told us: its latest, or that of a named run."""

    output_text: str
    error: str = ""
    run_id: str = ""
