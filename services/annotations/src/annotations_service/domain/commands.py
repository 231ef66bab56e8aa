"""Commands: what a caller asks the annotations context to do."""

from dataclasses import dataclass

from workbench.annotations.v1.annotations_pb2 import AnnotationKind


@dataclass(frozen=True, slots=True)
class RecordAnnotation:
    """Judge one model's output for one record: golden, fixed (with the right text) or wrong."""

    dataset_id: str
    record_id: str
    model_id: str
    kind: AnnotationKind.ValueType
    fixed_text: str = ""
    note: str = ""
    annotator: str = ""
    # The record's annotation version the caller saw; None: whatever is there now.
    expected_version: int | None = None
    # The run whose result the caller saw and judged ("": the model's latest result).
    run_id: str = ""


@dataclass(frozen=True, slots=True)
class ClearAnnotation:
    """Undo: remove the current mark of one model's output for one record (its history keeps it)."""

    dataset_id: str
    record_id: str
    model_id: str
    annotator: str = ""
    expected_version: int | None = None
