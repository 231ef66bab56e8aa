"""Domain values to proto messages and back (the only place that knows both)."""

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
    message = pb.Annotation(
        dataset_id=annotation.dataset_id,
        record_id=annotation.record_id,
        model_id=annotation.model_id,
        kind=annotation.kind,
        output_text=annotation.output_text,
        note=annotation.note,
        annotator=annotation.annotator,
        version=annotation.version,
    )
    if annotation.recorded_at is not None:
        message.recorded_at.CopyFrom(to_timestamp(annotation.recorded_at))
    return message
