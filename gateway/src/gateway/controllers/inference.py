"""Models and runs (a run is one model over one dataset; the seed's paths call them benchmarks)."""

import asyncio

import msgspec
from litestar import Controller, get, post
from litestar.exceptions import ClientException
from litestar.params import Parameter

from gateway.clients import Clients
from gateway.errors import ErrorResponse, error_parts
from gateway.views import ModelView, RunView, model_view, run_view
from workbench.inference.v1 import inference_pb2 as inf


class StartRunsBody(msgspec.Struct, forbid_unknown_fields=True):
    dataset_id: str
    model_ids: list[str] = []
    model_id: str | None = None  # one model, as the seed's UI sent it

    def models(self) -> list[str]:
        wanted = [*self.model_ids, *([self.model_id] if self.model_id else [])]
        return list(dict.fromkeys(m for m in wanted if m))


class RunStartError(msgspec.Struct):
    """Why one model's run did not start: the error name and detail an error response would carry."""

    model_id: str
    error: str
    detail: str


class StartedRuns(msgspec.Struct):
    """The runs that started and, per model, why the others did not (retry only those)."""

    runs: list[RunView]
    errors: list[RunStartError]


class ModelController(Controller):
    path = "/models"
    tags = ["models"]

    @get("/", operation_id="listModels")
    async def list_models(self, clients: Clients) -> dict[str, list[ModelView]]:
        reply = await clients.inference.ListModels(inf.ListModelsRequest())
        return {"models": [model_view(m) for m in reply.models]}


class RunController(Controller):
    path = "/benchmarks"
    tags = ["runs"]

    @post("/run", operation_id="startRuns")
    async def start_runs(self, data: StartRunsBody, clients: Clients) -> StartedRuns:
        """Starts one run per model, all at once.

        201 when at least one run started: `runs` holds those, `errors` says why each other model's
        did not (a retry names only those models, so no run is started twice). When none started,
        the first model's error status, with every model's error in `errors`.
        """
        models = data.models()
        if not models:
            raise ClientException('name at least one model in "model_ids"')
        replies = await asyncio.gather(
            *(clients.inference.StartRun(inf.StartRunRequest(dataset_id=data.dataset_id, model_id=m)) for m in models),
            return_exceptions=True,
        )
        runs: list[RunView] = []
        errors: list[tuple[int, RunStartError]] = []
        for model_id, reply in zip(models, replies, strict=True):
            if isinstance(reply, BaseException):
                if not isinstance(reply, Exception):  # cancelled, KeyboardInterrupt: not a model's failure
                    raise reply
                status, error, detail = error_parts(reply)
                errors.append((status, RunStartError(model_id=model_id, error=error, detail=detail)))
            else:
                runs.append(run_view(reply.run))
        if not runs:
            status, first = errors[0]
            raise ErrorResponse(status, first.error, first.detail, errors=[e for _, e in errors])
        return StartedRuns(runs=runs, errors=[e for _, e in errors])

    @get("/active", operation_id="listActiveRuns")
    async def active_runs(self, clients: Clients, dataset_id: str = "") -> dict[str, list[RunView]]:
        reply = await clients.inference.ListRuns(inf.ListRunsRequest(dataset_id=dataset_id, active_only=True))
        return {"runs": [run_view(r) for r in reply.runs]}

    @get("/", operation_id="listRuns")
    async def list_runs(
        self, clients: Clients, dataset_id: str = Parameter(default="", description="empty: every dataset")
    ) -> dict[str, list[RunView]]:
        reply = await clients.inference.ListRuns(inf.ListRunsRequest(dataset_id=dataset_id))
        return {"runs": [run_view(r) for r in reply.runs]}
