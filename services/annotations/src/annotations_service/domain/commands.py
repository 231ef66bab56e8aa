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
