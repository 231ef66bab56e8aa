"""Models and benchmark runs (a run is one model over one dataset)."""

import asyncio

import msgspec
from litestar import Controller, get, post
from litestar.exceptions import ClientException
from litestar.params import Parameter

from gateway.clients import RPC_TIMEOUT_S, Clients
from gateway.views import ModelView, RunView, model_view, run_view
from workbench.inference.v1 import inference_pb2 as inf


class StartRunsBody(msgspec.Struct, forbid_unknown_fields=True):
    dataset_id: str
    model_ids: list[str] = []
    model_id: str | None = None  # one model, as the seed's UI sent it

    def models(self) -> list[str]:
        wanted = [*self.model_ids, *([self.model_id] if self.model_id else [])]
        return list(dict.fromkeys(m for m in wanted if m))


class ModelController(Controller):
    path = "/models"
    tags = ["models"]

    @get("/", operation_id="listModels")
    async def list_models(self, clients: Clients) -> dict[str, list[ModelView]]:
        reply = await clients.inference.ListModels(inf.ListModelsRequest(), timeout=RPC_TIMEOUT_S)
        return {"models": [model_view(m) for m in reply.models]}


class BenchmarkController(Controller):
    path = "/benchmarks"
    tags = ["runs"]

    @post("/run", operation_id="startRuns")
    async def start_runs(self, data: StartRunsBody, clients: Clients) -> dict[str, list[RunView]]:
        """Starts one run per model, all at once."""
        models = data.models()
        if not models:
            raise ClientException('name at least one model in "model_ids"')
        replies = await asyncio.gather(
            *(
                clients.inference.StartRun(
                    inf.StartRunRequest(dataset_id=data.dataset_id, model_id=m), timeout=RPC_TIMEOUT_S
                )
                for m in models
            )
        )
        return {"runs": [run_view(reply.run) for reply in replies]}

    @get("/active", operation_id="listActiveRuns")
    async def active_runs(self, clients: Clients, dataset_id: str = "") -> dict[str, list[RunView]]:
        reply = await clients.inference.ListRuns(
            inf.ListRunsRequest(dataset_id=dataset_id, active_only=True), timeout=RPC_TIMEOUT_S
        )
        return {"runs": [run_view(r) for r in reply.runs]}

    @get("/", operation_id="listRuns")
    async def list_runs(
        self, clients: Clients, dataset_id: str = Parameter(default="", description="empty: every dataset")
    ) -> dict[str, list[RunView]]:
        reply = await clients.inference.ListRuns(inf.ListRunsRequest(dataset_id=dataset_id), timeout=RPC_TIMEOUT_S)
        return {"runs": [run_view(r) for r in reply.runs]}
