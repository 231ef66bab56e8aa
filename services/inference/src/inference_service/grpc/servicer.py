"""InferenceService over gRPC: proto -> application call -> proto, nothing more.

Errors are not handled here: the service host's one interceptor maps them to status codes.
"""

from dataclasses import dataclass

import grpc

from inference_service.application import InferenceApplication
from inference_service.domain.state import RunState
from inference_service.grpc.convert import model_to_proto, run_to_proto, sampling_from_request
from workbench.inference.v1 import inference_pb2 as pb
from workbench.inference.v1 import inference_pb2_grpc as pb_grpc


@dataclass
class InferenceServicer(pb_grpc.InferenceServiceServicer):
    app: InferenceApplication

    async def ListModels(
        self, request: pb.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListModelsResponse:
        models = await self.app.list_models_with_workers()
        return pb.ListModelsResponse(models=[model_to_proto(model.spec, model.workers) for model in models])

    async def StartRun(self, request: pb.StartRunRequest, context: grpc.aio.ServicerContext) -> pb.StartRunResponse:
        sampling = sampling_from_request(request)
        run = await self.app.start_run(
            request.dataset_id, request.model_id, sampling, request.request_id, request.json_schema
        )
        return pb.StartRunResponse(run=await self._run(run))

    async def GetRun(self, request: pb.GetRunRequest, context: grpc.aio.ServicerContext) -> pb.GetRunResponse:
        return pb.GetRunResponse(run=await self._run(await self.app.get_run(request.run_id)))

    async def ListRuns(self, request: pb.ListRunsRequest, context: grpc.aio.ServicerContext) -> pb.ListRunsResponse:
        return pb.ListRunsResponse(
            runs=await self._runs(await self.app.list_runs(request.dataset_id, request.active_only))
        )

    async def CancelRun(self, request: pb.CancelRunRequest, context: grpc.aio.ServicerContext) -> pb.CancelRunResponse:
        return pb.CancelRunResponse(run=await self._run(await self.app.cancel_run(request.run_id)))

    async def ListResults(
        self, request: pb.ListResultsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListResultsResponse:
        if request.limit:
            results, total = await self.app.results_page(request.run_id, request.offset, request.limit)
            return pb.ListResultsResponse(results=results, total=total)
        results = await self.app.list_results(request.dataset_id, request.run_id, request.record_ids)
        return pb.ListResultsResponse(results=results, total=len(results))

    async def _run(self, run: RunState) -> pb.Run:
        (answer,) = await self._runs([run])
        return answer

    async def _runs(self, runs: list[RunState]) -> list[pb.Run]:
        waiting = await self.app.waiting_for(runs)
        return [run_to_proto(run, waiting.get(run.run_id, "")) for run in runs]
