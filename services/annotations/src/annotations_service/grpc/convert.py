"""Domain values to proto messages and back (the only place that knows both)."""

from dataclasses import asdict

from annotations_service.domain.annotation import Annotation
from annotations_service.domain.commands import RecordAnnotation
from eventlog.events import to_timestamp
from workbench.annotations.v1 import annotations_pb2 as pb


def record_annotation_command(request: pb.RecordAnnotationRequest) -> RecordAnnotation:
    return RecordAnnotation(
        dataset_id=request.dataset_id,
        record_id=request.record_id,
        model_id=request.model_id,
        kind=request.kind,
        fixed_text=request.fixed_text,
        note=request.note,
        annotator=request.annotator,
        expected_version=request.expected_version if request.HasField("expected_version") else None,
    )


def annotation_to_proto(annotation: Annotation) -> pb.Annotation:
    fields = asdict(annotation)
    del fields["source"]  # not part of the contract's Annotation
    recorded_at = fields.pop("recorded_at")
    if recorded_at is not None:
        fields["recorded_at"] = to_timestamp(recorded_at)
    return pb.Annotation(**fields)
