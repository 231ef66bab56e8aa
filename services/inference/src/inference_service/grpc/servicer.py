"""InferenceService over gRPC: proto -> application call -> proto, nothing more.

Errors are not handled here: the service host's one interceptor maps them to status codes.
"""

from dataclasses import dataclass

import grpc

from inference_service.application import InferenceApplication
from inference_service.grpc.convert import model_to_proto, run_to_proto, sampling_from_request
from workbench.inference.v1 import inference_pb2 as pb
from workbench.inference.v1 import inference_pb2_grpc as pb_grpc


@dataclass
class InferenceServicer(pb_grpc.InferenceServiceServicer):
    app: InferenceApplication

    async def ListModels(
        self, request: pb.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListModelsResponse:
        return pb.ListModelsResponse(models=[model_to_proto(model) for model in self.app.list_models()])

    async def StartRun(self, request: pb.StartRunRequest, context: grpc.aio.ServicerContext) -> pb.StartRunResponse:
        run = await self.app.start_run(request.dataset_id, request.model_id, sampling_from_request(request))
        return pb.StartRunResponse(run=run_to_proto(run))

    async def GetRun(self, request: pb.GetRunRequest, context: grpc.aio.ServicerContext) -> pb.GetRunResponse:
        return pb.GetRunResponse(run=run_to_proto(await self.app.get_run(request.run_id)))

    async def ListRuns(self, request: pb.ListRunsRequest, context: grpc.aio.ServicerContext) -> pb.ListRunsResponse:
        runs = await self.app.list_runs(request.dataset_id, request.active_only)
        return pb.ListRunsResponse(runs=[run_to_proto(run) for run in runs])

    async def ListResults(
        self, request: pb.ListResultsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListResultsResponse:
        results = await self.app.list_results(request.dataset_id, request.run_id, request.record_ids)
        return pb.ListResultsResponse(results=results)
