"""AnnotationService over gRPC: proto -> command -> application -> proto, nothing more.

Errors are not handled here: the service host's one interceptor maps them to status codes.
"""

from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc

from annotations_service.application import AnnotationsApplication
from annotations_service.domain.errors import InvalidInput
from annotations_service.grpc.convert import annotation_to_proto, record_annotation_command
from workbench.annotations.v1 import annotations_pb2 as pb
from workbench.annotations.v1 import annotations_pb2_grpc as pb_grpc


@dataclass
class AnnotationServicer(pb_grpc.AnnotationServiceServicer):
    app: AnnotationsApplication

    async def RecordAnnotation(
        self, request: pb.RecordAnnotationRequest, context: grpc.aio.ServicerContext
    ) -> pb.RecordAnnotationResponse:
        annotation = await self.app.record_annotation(record_annotation_command(request))
        return pb.RecordAnnotationResponse(annotation=annotation_to_proto(annotation))

    async def ListAnnotations(
        self, request: pb.ListAnnotationsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListAnnotationsResponse:
        annotations = await self.app.list_annotations(request.dataset_id, list(request.record_ids))
        return pb.ListAnnotationsResponse(annotations=[annotation_to_proto(a) for a in annotations])

    async def ExportDataset(
        self, request: pb.ExportDatasetRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ExportDatasetResponse]:
        if request.format not in (pb.EXPORT_FORMAT_UNSPECIFIED, pb.EXPORT_FORMAT_JSONL):
            raise InvalidInput(f"export format {request.format} is not supported: use JSONL")
        async for chunk in self.app.export_dataset(request.dataset_id, list(request.kinds)):
            yield pb.ExportDatasetResponse(chunk=chunk)
