"""Models and runs (a run is one model over one dataset; the seed's paths call them benchmarks)."""

import asyncio
import json
from typing import Any

import msgspec
import msgspec.structs
from litestar import Controller, get, post
from litestar.exceptions import ClientException
from litestar.params import Parameter

from gateway.access import Role
from gateway.auth import ROLE_OPT
from gateway.clients import Clients
from gateway.errors import ErrorResponse, error_parts
from gateway.integers import INT64_MAX, Int32, Int64
from gateway.views import ModelView, ResultView, RunView, model_view, result_view, run_view
from workbench.inference.v1 import inference_pb2 as inf


class SamplingBody(msgspec.Struct, forbid_unknown_fields=True):
    """The run's own sampling, applied to every record; a field left out takes the model's default."""

    temperature: float | None = None
    top_p: float | None = None
    max_tokens: Int32 | None = None
    seed: Int64 | None = None


class StartRunsBody(msgspec.Struct, forbid_unknown_fields=True):
    dataset_id: str
    model_ids: list[str] = []
    model_id: str | None = None  # one model, as the seed's UI sent it
    sampling: SamplingBody | None = None  # none: the model's defaults, records' own fields first
    json_schema: dict[str, Any] | str | None = None  # structured output: a JSON schema (object or text)
    # The client's: a retry with the same id answers the runs the first attempt started.
    request_id: str = ""

    def models(self) -> list[str]:
        wanted = [*self.model_ids, *([self.model_id] if self.model_id else [])]
        return list(dict.fromkeys(m for m in wanted if m))

    def request(self, model: inf.Model) -> inf.StartRunRequest:
        """The StartRun of one model: its sampling over the model's defaults, its own request id."""
        request = inf.StartRunRequest(dataset_id=self.dataset_id, model_id=model.model_id)
        if self.sampling is not None:
            defaults = model.default_sampling
            request.sampling.CopyFrom(
                inf.SamplingParams(
                    **{
                        name: getattr(self.sampling, name)
                        if getattr(self.sampling, name) is not None
                        else getattr(defaults, name)
                        for name in ("temperature", "top_p", "max_tokens", "seed")
                    }
                )
            )
        if self.json_schema is not None:
            request.json_schema = (
                self.json_schema if isinstance(self.json_schema, str) else json.dumps(self.json_schema)
            )
        if self.request_id:
            request.request_id = f"{self.request_id}:{model.model_id}"
        return request


class ResultsPage(msgspec.Struct):
    results: list[ResultView]
    total: int
    offset: int
    limit: int


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

    @get("/", operation_id="listModels", opt={ROLE_OPT: Role.VIEWER})
    async def list_models(self, clients: Clients) -> dict[str, list[ModelView]]:
        reply = await clients.inference.ListModels(inf.ListModelsRequest())
        return {"models": [model_view(m) for m in reply.models]}


class RunController(Controller):
    path = "/benchmarks"
    tags = ["runs"]

    @post("/run", operation_id="startRuns", opt={ROLE_OPT: Role.ADMIN})
    async def start_runs(self, data: StartRunsBody, clients: Clients) -> StartedRuns:
        """Starts one run per model, all at once.

        201 when at least one run started: `runs` holds those, `errors` says why each other model's
        did not (a retry names only those models, so no run is started twice). When none started,
        the first model's error status, with every model's error in `errors`.
        """
        models = data.models()
        if not models:
            raise ClientException('name at least one model in "model_ids"')
        known: dict[str, inf.Model] = {}
        if data.sampling is not None:  # the models' defaults fill the fields the body leaves out
            known = {m.model_id: m for m in (await clients.inference.ListModels(inf.ListModelsRequest())).models}
        # An unknown model is the service's to refuse (it names the known ones): ask with no defaults.
        requests = [data.request(known.get(m) or inf.Model(model_id=m)) for m in models]
        replies = await asyncio.gather(*(clients.inference.StartRun(r) for r in requests), return_exceptions=True)
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

    @get("/active", operation_id="listActiveRuns", opt={ROLE_OPT: Role.VIEWER})
    async def active_runs(self, clients: Clients, dataset_id: str = "") -> dict[str, list[RunView]]:
        reply = await clients.inference.ListRuns(inf.ListRunsRequest(dataset_id=dataset_id, active_only=True))
        return {"runs": [run_view(r) for r in reply.runs]}

    @get("/", operation_id="listRuns", opt={ROLE_OPT: Role.VIEWER})
    async def list_runs(
        self, clients: Clients, dataset_id: str = Parameter(default="", description="empty: every dataset")
    ) -> dict[str, list[RunView]]:
        reply = await clients.inference.ListRuns(inf.ListRunsRequest(dataset_id=dataset_id))
        return {"runs": [run_view(r) for r in reply.runs]}

    @get("/{run_id:str}", operation_id="getRun", opt={ROLE_OPT: Role.VIEWER})
    async def get_run(self, clients: Clients, run_id: str) -> dict[str, RunView]:
        """One run, with what reproduces it and, while queued, what it waits for."""
        reply = await clients.inference.GetRun(inf.GetRunRequest(run_id=run_id))
        return {"run": run_view(reply.run)}

    @post("/{run_id:str}/cancel", operation_id="cancelRun", opt={ROLE_OPT: Role.ADMIN}, status_code=200)
    async def cancel_run(self, clients: Clients, run_id: str) -> dict[str, RunView]:
        """Cancels a queued or running run; its recorded results stay. 409 when it has already ended."""
        reply = await clients.inference.CancelRun(inf.CancelRunRequest(run_id=run_id))
        return {"run": run_view(reply.run)}

    @get("/{run_id:str}/results", operation_id="listRunResults", opt={ROLE_OPT: Role.VIEWER})
    async def run_results(
        self,
        clients: Clients,
        run_id: str,
        offset: int = Parameter(default=0, ge=0, le=INT64_MAX),
        limit: int = Parameter(default=100, ge=1, le=1000),
    ) -> ResultsPage:
        """A run's results in the order they were recorded, a page at a time."""
        request = inf.ListResultsRequest(run_id=run_id, offset=offset, limit=limit)
        reply = await clients.inference.ListResults(request)
        return ResultsPage([result_view(r) for r in reply.results], reply.total, offset, limit)
