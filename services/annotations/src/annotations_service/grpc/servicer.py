"""AnnotationService over gRPC: proto -> command -> application -> proto, nothing more."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from annotations_service.adapters.tables import AnnotationRow
from annotations_service.application import AnnotationsApp
from annotations_service.domain.commands import RecordAnnotation
from annotations_service.domain.errors import Conflict, FailedPrecondition, InvalidInput, NotFound, Unavailable
from workbench.annotations.v1 import annotations_pb2 as pb
from workbench.annotations.v1 import annotations_pb2_grpc as pb_grpc

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["AnnotationService"].full_name

ERROR_MAP: dict[type[BaseException], grpc.StatusCode] = {
    InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    Conflict: grpc.StatusCode.ABORTED,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
}


class AnnotationServicer(pb_grpc.AnnotationServiceServicer):
    def __init__(self, app: AnnotationsApp) -> None:
        self.app = app

    async def RecordAnnotation(
        self, request: pb.RecordAnnotationRequest, context: grpc.aio.ServicerContext
    ) -> pb.RecordAnnotationResponse:
        command = RecordAnnotation(
            dataset_id=request.dataset_id,
            record_id=request.record_id,
            model_id=request.model_id,
            kind=request.kind,
            recorded_at=datetime.now(UTC),
            fixed_text=request.fixed_text,
            note=request.note,
            annotator=request.annotator,
            expected_version=request.expected_version if request.HasField("expected_version") else None,
        )
        row = await self.app.record_annotation(command)
        return pb.RecordAnnotationResponse(annotation=to_proto(row))

    async def ListAnnotations(
        self, request: pb.ListAnnotationsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListAnnotationsResponse:
        rows = self.app.list_annotations(request.dataset_id, list(request.record_ids))
        return pb.ListAnnotationsResponse(annotations=[to_proto(row) for row in rows])

    async def ExportDataset(
        self, request: pb.ExportDatasetRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ExportDatasetResponse]:
        if request.format not in (pb.EXPORT_FORMAT_UNSPECIFIED, pb.EXPORT_FORMAT_JSONL):
            raise InvalidInput(f"export format {request.format} is not supported: use JSONL")
        async for chunk in self.app.export_dataset(request.dataset_id, list(request.kinds)):
            yield pb.ExportDatasetResponse(chunk=chunk)


def to_proto(row: AnnotationRow) -> pb.Annotation:
    annotation = pb.Annotation(
        dataset_id=row.dataset_id,
        record_id=row.record_id,
        model_id=row.model_id,
        kind=row.kind,  # type: ignore[arg-type]
        output_text=row.output_text,
        note=row.note,
        annotator=row.annotator,
        version=row.version,
    )
    if row.recorded_at is not None:
        stamp = Timestamp()
        stamp.FromDatetime(row.recorded_at)
        annotation.recorded_at.CopyFrom(stamp)
    return annotation
