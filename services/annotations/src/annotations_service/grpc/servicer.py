"""AnnotationService over gRPC: proto -> command -> application -> proto, nothing more.

Errors are not handled here: the service host's one interceptor maps them to status codes.
"""

from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc

from annotations_service.application import AnnotationsApplication
from annotations_service.curation_queries import CurationQueries
from annotations_service.grpc.convert import (
    annotation_to_proto,
    clear_annotation_command,
    counts_to_proto,
    history_entry_to_proto,
    label_studio_link_to_proto,
    queried_record_to_proto,
    record_annotation_command,
    record_filter,
)
from annotations_service.label_studio_sync import LabelStudioSync
from workbench.annotations.v1 import annotations_pb2 as pb
from workbench.annotations.v1 import annotations_pb2_grpc as pb_grpc


@dataclass
class AnnotationServicer(pb_grpc.AnnotationServiceServicer):
    app: AnnotationsApplication
    curation: CurationQueries
    label_studio: LabelStudioSync

    async def RecordAnnotation(
        self, request: pb.RecordAnnotationRequest, context: grpc.aio.ServicerContext
    ) -> pb.RecordAnnotationResponse:
        annotation = await self.app.record_annotation(record_annotation_command(request))
        return pb.RecordAnnotationResponse(annotation=annotation_to_proto(annotation))

    async def ClearAnnotation(
        self, request: pb.ClearAnnotationRequest, context: grpc.aio.ServicerContext
    ) -> pb.ClearAnnotationResponse:
        return pb.ClearAnnotationResponse(version=await self.app.clear_annotation(clear_annotation_command(request)))

    async def AnnotationHistory(
        self, request: pb.AnnotationHistoryRequest, context: grpc.aio.ServicerContext
    ) -> pb.AnnotationHistoryResponse:
        entries = await self.app.history(request.dataset_id, request.record_id)
        return pb.AnnotationHistoryResponse(entries=[history_entry_to_proto(entry) for entry in entries])

    async def ListAnnotations(
        self, request: pb.ListAnnotationsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListAnnotationsResponse:
        annotations = await self.app.list_annotations(request.dataset_id, list(request.record_ids))
        return pb.ListAnnotationsResponse(annotations=[annotation_to_proto(a) for a in annotations])

    async def QueryRecords(
        self, request: pb.QueryRecordsRequest, context: grpc.aio.ServicerContext
    ) -> pb.QueryRecordsResponse:
        wanted = record_filter(request.filter)
        page = await self.curation.query_records(
            request.dataset_id, wanted, request.model_id, request.q, request.offset, request.limit
        )
        return pb.QueryRecordsResponse(records=[queried_record_to_proto(r) for r in page.records], total=page.total)

    async def GetStats(self, request: pb.GetStatsRequest, context: grpc.aio.ServicerContext) -> pb.GetStatsResponse:
        stats = await self.curation.stats(request.dataset_id)
        return pb.GetStatsResponse(
            overall=counts_to_proto(stats.overall),
            by_model={model: counts_to_proto(counts) for model, counts in stats.by_model.items()},
        )

    async def ExportDataset(
        self, request: pb.ExportDatasetRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ExportDatasetResponse]:
        async for chunk in self.app.export_dataset(request.dataset_id, list(request.kinds), request.format):
            yield pb.ExportDatasetResponse(chunk=chunk)

    async def LinkLabelStudio(
        self, request: pb.LinkLabelStudioRequest, context: grpc.aio.ServicerContext
    ) -> pb.LinkLabelStudioResponse:
        link = await self.label_studio.link(request.dataset_id, request.project_id, request.title)
        return pb.LinkLabelStudioResponse(link=label_studio_link_to_proto(link))

    async def GetLabelStudioLink(
        self, request: pb.GetLabelStudioLinkRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetLabelStudioLinkResponse:
        link = await self.label_studio.get_link(request.dataset_id)
        response = pb.GetLabelStudioLinkResponse(configured=self.label_studio.configured)
        if link is not None:
            response.link.CopyFrom(label_studio_link_to_proto(link))
        return response

    async def PushToLabelStudio(
        self, request: pb.PushToLabelStudioRequest, context: grpc.aio.ServicerContext
    ) -> pb.PushToLabelStudioResponse:
        outcome = await self.label_studio.push(request.dataset_id)
        return pb.PushToLabelStudioResponse(pushed=outcome.pushed, skipped=outcome.skipped)

    async def PullFromLabelStudio(
        self, request: pb.PullFromLabelStudioRequest, context: grpc.aio.ServicerContext
    ) -> pb.PullFromLabelStudioResponse:
        outcome = await self.label_studio.pull(request.dataset_id)
        return pb.PullFromLabelStudioResponse(recorded=outcome.recorded, unchanged=outcome.unchanged)
