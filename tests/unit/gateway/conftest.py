"""The gateway wired to fake services of our own contracts, driven through Litestar's AsyncTestClient.

AsyncTestClient runs the app on an event loop of its own (a blocking portal in another thread) and
blocks the test's loop while a request runs, so the fake gRPC servers live on a third loop in a
background thread; everything meets over real sockets, as in production.

The fakes implement the generated servicer base classes with canned data and record what they were
sent; tests reach them through the `services` fixture.
"""

import asyncio
import hashlib
import json
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest
import uvicorn
from google.protobuf.timestamp_pb2 import Timestamp
from litestar import Litestar
from litestar.testing import AsyncTestClient

from devstack.natsserver import free_port
from eventlog import InMemoryEventStore
from gateway.app import create_app
from gateway.settings import GatewaySettings
from servicehost.grpc_server import GrpcService, rich_status, start_grpc_server
from workbench.annotations.v1 import annotations_pb2 as ann
from workbench.annotations.v1 import annotations_pb2_grpc
from workbench.common.v1 import common_pb2, operations_pb2, operations_pb2_grpc
from workbench.datasets.v1 import datasets_pb2 as ds
from workbench.datasets.v1 import datasets_pb2_grpc
from workbench.inference.v1 import inference_pb2 as inf
from workbench.inference.v1 import inference_pb2_grpc

DATASET_ID = "ds-1"
RECORD_WITH_SLASH = "rec/3"


def at(seconds: int) -> Timestamp:
    return Timestamp(seconds=1_760_000_000 + seconds)


DATASET = ds.Dataset(
    dataset_id=DATASET_ID,
    name="candidates.jsonl",
    format=ds.RECORD_FORMAT_MIXED,
    record_count=3,
    sha256="ab" * 32,
    object_name="obj-1",
    size_bytes=321,
    registered_at=at(0),
)
R1_METADATA = {"name": "Ada <i>L.</i>", "years": 7, "pedigree": {"school": "Cambridge"}, "tags": ["math", "ai"]}
RECORDS = [
    ds.Record(record_id="r1", index=0, prompt="Is the sky blue?", metadata_json=json.dumps(R1_METADATA)),
    ds.Record(
        record_id="r2",
        index=1,
        messages=[
            common_pb2.ChatMessage(role="system", content="Answer briefly."),
            common_pb2.ChatMessage(role="user", content="<b>2+2?</b>"),
        ],
        metadata_json="{}",
        sampling=ds.RecordSampling(max_tokens=32, temperature=0.0),  # a zero that is set still counts
    ),
    ds.Record(record_id=RECORD_WITH_SLASH, index=2, prompt="Say same."),  # no metadata_json at all
]
MAX_PROBLEMS = 3  # problems named in a report; the rest are counted in "more"
SAMPLING = inf.SamplingParams(temperature=0.0, top_p=1.0, max_tokens=64, seed=7)
MODELS = [
    inf.Model(
        model_id="gemma",
        display_name="Gemma 3 4B",
        backend="vllm",
        path="/models/gemma",
        revision="r1",
        max_model_len=4096,
        default_sampling=SAMPLING,
    ),
    inf.Model(
        model_id="olmo",
        display_name="OLMo 2 7B",
        backend="openai",
        path="olmo",
        revision="r2",
        workers=[inf.WorkerView(worker="gpu-1", state=inf.WORKER_STATE_LOADING, since=at(5))],
    ),
]


def run(run_id: str, model_id: str, status: int, requested: int) -> inf.Run:
    return inf.Run(
        run_id=run_id,
        dataset_id=DATASET_ID,
        model_id=model_id,
        status=status,  # type: ignore[arg-type]
        total=3,
        done=3 if status == inf.RUN_STATUS_COMPLETED else 1,
        sampling=SAMPLING,
        engine="vllm 0.32.0",
        requested_at=at(requested),
    )


# Listed out of order on purpose: the gateway orders runs by requested_at.
RUNS = [
    run("run-gemma-2", "gemma", inf.RUN_STATUS_RUNNING, 300),
    run("run-olmo", "olmo", inf.RUN_STATUS_COMPLETED, 200),
    run("run-gemma-1", "gemma", inf.RUN_STATUS_COMPLETED, 100),
    inf.Run(run_id="run-other", dataset_id="ds-other", model_id="olmo", status=inf.RUN_STATUS_QUEUED),
]


def result(run_id: str, model_id: str, record_id: str, text: str, error: str = "") -> inf.Result:
    return inf.Result(
        run_id=run_id,
        dataset_id=DATASET_ID,
        model_id=model_id,
        record_id=record_id,
        output_text=text,
        finish_reason="stop" if not error else "",
        prompt_tokens=5,
        output_tokens=2,
        latency_ms=12.5,
        error=error,
    )


RESULTS = [
    result("run-gemma-1", "gemma", "r1", "Yes."),
    result("run-olmo", "olmo", "r1", "  Yes.\n"),  # same answer, other whitespace: no disagreement
    result("run-gemma-1", "gemma", "r2", "4"),
    result("run-olmo", "olmo", "r2", "<script>alert(1)</script>"),
    result("run-gemma-2", "gemma", "r2", "Four."),  # the rerun replaces gemma's older answer
    result("run-gemma-1", "gemma", RECORD_WITH_SLASH, "same"),
    result("run-olmo", "olmo", RECORD_WITH_SLASH, "", error="engine crashed"),  # a failure is no answer
]
ANNOTATIONS = [
    ann.Annotation(
        dataset_id=DATASET_ID,
        record_id="r1",
        model_id="gemma",
        kind=ann.ANNOTATION_KIND_GOLDEN,
        output_text="Yes.",
        annotator="ana",
        version=1,
    ),
    ann.Annotation(
        dataset_id=DATASET_ID,
        record_id="r1",
        model_id="olmo",
        kind=ann.ANNOTATION_KIND_WRONG,
        output_text="  Yes.\n",
        note="hedges",
        version=2,
    ),
]
# The annotations service's view of the records' disagreement, and the records each filter passes.
DISAGREEMENTS = {"r2": ann.Disagreement(differs=True, score=1.0)}
FILTERED = {
    ann.RECORD_FILTER_DIFFERENCES: {"r2"},
    ann.RECORD_FILTER_GOLDEN: {"r1"},
    ann.RECORD_FILTER_FIXED: set(),
    ann.RECORD_FILTER_WRONG: {"r1"},
    ann.RECORD_FILTER_NEEDS_REVIEW: {"r2", RECORD_WITH_SLASH},
}
EXPORT_CHUNKS = [b'{"messages": [{"role": "user", "content": "Is the sky blue?"}', b', {"role": "assistant"}]}\n']


@dataclass
class Upload:
    name: str = ""
    skip_invalid: bool = False
    chunks: list[int] = field(default_factory=list)  # the size of each chunk message
    data: bytearray = field(default_factory=bytearray)
    completed: bool = False
    trailer: ds.UploadTrailer | None = None


def problems_in(upload: Upload) -> list[ds.Problem]:
    """Every line whose "prompt" is not a string (the fake's whole validation)."""
    problems = []
    for number, line in enumerate(upload.data.decode(errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            prompt = json.loads(line).get("prompt")
        except (ValueError, AttributeError):
            problems.append(ds.Problem(line=number, reason="not valid JSON"))
            continue
        if not isinstance(prompt, str):
            problems.append(ds.Problem(line=number, field="prompt", reason="must be a string"))
    return problems


def report_of(upload: Upload, problems: list[ds.Problem], skipped: int = 0) -> ds.ValidationReport:
    return ds.ValidationReport(
        problems=problems[:MAX_PROBLEMS],
        more=max(len(problems) - MAX_PROBLEMS, 0),
        skipped_records=skipped,
        line_word="row" if upload.name.endswith(".csv") else "line",
    )


class FakeDatasets(datasets_pb2_grpc.DatasetServiceServicer):
    def __init__(self) -> None:
        self.uploads: list[Upload] = []
        self.registered: dict[str, ds.Dataset] = {}  # sha256 -> dataset, to answer a duplicate upload
        self.record_requests: list[ds.ListRecordsRequest] = []
        self.renamed: list[ds.RenameDatasetRequest] = []
        self.deleted: list[str] = []

    async def UploadDataset(
        self, request_iterator: AsyncIterator[ds.UploadDatasetRequest], context: grpc.aio.ServicerContext
    ) -> ds.UploadDatasetResponse:
        upload = Upload()
        self.uploads.append(upload)
        async for request in request_iterator:
            if request.HasField("header"):
                upload.name = request.header.name
                upload.skip_invalid = request.header.skip_invalid
                if upload.name.endswith(".exe"):  # answers before the file has been sent
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "only .jsonl files are accepted")
            elif request.HasField("trailer"):
                upload.trailer = request.trailer
            else:
                upload.chunks.append(len(request.chunk))
                upload.data += request.chunk
        upload.completed = True
        sha256 = hashlib.sha256(upload.data).hexdigest()
        if sha256 in self.registered:
            return ds.UploadDatasetResponse(dataset=self.registered[sha256], already_registered=True)
        problems = problems_in(upload)
        if problems and not upload.skip_invalid:
            first = problems[0]
            message = f"line {first.line}: " + (f'field "{first.field}" ' if first.field else "") + first.reason
            await context.abort_with_status(
                rich_status(grpc.StatusCode.INVALID_ARGUMENT, message, [report_of(upload, problems)])
            )
        count = sum(1 for line in upload.data.splitlines() if line.strip()) - len(problems)
        if count > 100_000:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "the file has more than 100000 records")
        dataset = ds.Dataset(
            dataset_id="ds-new" if not self.registered else f"ds-new-{len(self.registered) + 1}",
            name=upload.name,
            format=ds.RECORD_FORMAT_PROMPT,
            record_count=count,
            sha256=sha256,
            size_bytes=len(upload.data),
            registered_at=at(5),
            skipped_records=len(problems),
        )
        self.registered[sha256] = dataset
        report = report_of(upload, problems, skipped=len(problems)) if problems else None
        return ds.UploadDatasetResponse(dataset=dataset, report=report)

    async def ListDatasets(
        self, request: ds.ListDatasetsRequest, context: grpc.aio.ServicerContext
    ) -> ds.ListDatasetsResponse:
        return ds.ListDatasetsResponse(datasets=[DATASET])

    async def GetDataset(
        self, request: ds.GetDatasetRequest, context: grpc.aio.ServicerContext
    ) -> ds.GetDatasetResponse:
        if request.dataset_id != DATASET_ID:
            await context.abort(
                grpc.StatusCode.NOT_FOUND, f"no dataset {request.dataset_id!r}: list them with ListDatasets"
            )
        return ds.GetDatasetResponse(dataset=DATASET)

    async def ReadRecords(
        self, request: ds.ReadRecordsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[ds.ReadRecordsResponse]:
        if request.dataset_id != DATASET_ID:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no dataset {request.dataset_id!r}")
        end = request.offset + request.limit if request.limit else None
        selected = RECORDS[request.offset : end]
        for start in range(0, len(selected), 2):  # batches of two: the gateway must join them
            yield ds.ReadRecordsResponse(records=selected[start : start + 2])

    async def ListRecords(
        self, request: ds.ListRecordsRequest, context: grpc.aio.ServicerContext
    ) -> ds.ListRecordsResponse:
        self.record_requests.append(request)
        if request.dataset_id != DATASET_ID:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no dataset {request.dataset_id!r}")
        q = request.q.lower()
        matching = [r for r in RECORDS if q in f"{r.record_id} {r.prompt} {r.messages} {r.metadata_json}".lower()]
        page = matching[request.offset : request.offset + request.limit]
        return ds.ListRecordsResponse(records=page, total=len(matching))

    async def RenameDataset(
        self, request: ds.RenameDatasetRequest, context: grpc.aio.ServicerContext
    ) -> ds.RenameDatasetResponse:
        if request.dataset_id != DATASET_ID:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no dataset {request.dataset_id!r}")
        if not request.name.strip():
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "a dataset's name cannot be empty")
        self.renamed.append(request)
        renamed = ds.Dataset()
        renamed.CopyFrom(DATASET)
        renamed.name = request.name
        return ds.RenameDatasetResponse(dataset=renamed)

    async def DeleteDataset(
        self, request: ds.DeleteDatasetRequest, context: grpc.aio.ServicerContext
    ) -> ds.DeleteDatasetResponse:
        if request.dataset_id != DATASET_ID or request.dataset_id in self.deleted:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no dataset {request.dataset_id!r}")
        self.deleted.append(request.dataset_id)
        return ds.DeleteDatasetResponse()


class FakeInference(inference_pb2_grpc.InferenceServiceServicer):
    def __init__(self) -> None:
        self.started: list[inf.StartRunRequest] = []
        self.cancelled: list[str] = []
        self.result_requests: list[inf.ListResultsRequest] = []
        self.oversized = False  # answer ListResults with more than the gateway's message size limit

    async def ListModels(
        self, request: inf.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> inf.ListModelsResponse:
        return inf.ListModelsResponse(models=MODELS)

    async def StartRun(self, request: inf.StartRunRequest, context: grpc.aio.ServicerContext) -> inf.StartRunResponse:
        if request.model_id == "explodes":
            await context.abort(grpc.StatusCode.INTERNAL, "Traceback: secret /etc/workbench/password")
        if request.model_id not in {m.model_id for m in MODELS}:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no model {request.model_id!r} in the models file")
        self.started.append(request)
        run_id = f"run-{len(self.started)}"
        return inf.StartRunResponse(run=run(run_id, request.model_id, inf.RUN_STATUS_QUEUED, 400))

    async def GetRun(self, request: inf.GetRunRequest, context: grpc.aio.ServicerContext) -> inf.GetRunResponse:
        for candidate in RUNS:
            if candidate.run_id == request.run_id:
                return inf.GetRunResponse(run=candidate)
        await context.abort(grpc.StatusCode.NOT_FOUND, f"run {request.run_id!r} not found")
        raise AssertionError

    async def CancelRun(
        self, request: inf.CancelRunRequest, context: grpc.aio.ServicerContext
    ) -> inf.CancelRunResponse:
        self.cancelled.append(request.run_id)
        if request.run_id == "run-olmo":
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "run run-olmo has already ended (completed)")
        return inf.CancelRunResponse(run=run(request.run_id, "gemma", inf.RUN_STATUS_CANCELLED, 300))

    async def ListRuns(self, request: inf.ListRunsRequest, context: grpc.aio.ServicerContext) -> inf.ListRunsResponse:
        active = {inf.RUN_STATUS_QUEUED, inf.RUN_STATUS_RUNNING}
        runs = [
            r
            for r in RUNS
            if (not request.dataset_id or r.dataset_id == request.dataset_id)
            and (not request.active_only or r.status in active)
        ]
        return inf.ListRunsResponse(runs=runs)

    async def ListResults(
        self, request: inf.ListResultsRequest, context: grpc.aio.ServicerContext
    ) -> inf.ListResultsResponse:
        self.result_requests.append(request)
        if self.oversized:
            return inf.ListResultsResponse(results=[result("run-olmo", "olmo", "r1", "x" * (65 * 1024 * 1024))])
        if request.limit:  # a page of one run's results
            mine = [r for r in RESULTS if r.run_id == request.run_id]
            page = mine[request.offset : request.offset + request.limit]
            return inf.ListResultsResponse(results=page, total=len(mine))
        wanted = set(request.record_ids)
        return inf.ListResultsResponse(
            results=[r for r in RESULTS if r.dataset_id == request.dataset_id and (not wanted or r.record_id in wanted)]
        )


class FakeAnnotations(annotations_pb2_grpc.AnnotationServiceServicer):
    def __init__(self) -> None:
        self.recorded: list[ann.RecordAnnotationRequest] = []
        self.list_requests: list[ann.ListAnnotationsRequest] = []
        self.cleared: list[ann.ClearAnnotationRequest] = []
        self.queries: list[ann.QueryRecordsRequest] = []
        self.ls_links: list[ann.LinkLabelStudioRequest] = []
        # As in the real service: a record's version is the sequence of its last annotation event.
        self.sequence = 2
        self.versions = {"r1": 2}

    async def RecordAnnotation(
        self, request: ann.RecordAnnotationRequest, context: grpc.aio.ServicerContext
    ) -> ann.RecordAnnotationResponse:
        current = self.versions.get(request.record_id, 0)
        if request.HasField("expected_version") and request.expected_version != current:
            await context.abort(
                grpc.StatusCode.ABORTED,
                f"record {request.record_id!r} changed since version {request.expected_version}: reload and retry",
            )
        self.recorded.append(request)
        self.sequence += 1
        self.versions[request.record_id] = self.sequence
        return ann.RecordAnnotationResponse(
            annotation=ann.Annotation(
                dataset_id=request.dataset_id,
                record_id=request.record_id,
                model_id=request.model_id,
                kind=request.kind,
                output_text=request.fixed_text or "the model's answer",
                note=request.note,
                annotator=request.annotator,
                version=self.sequence,
                recorded_at=at(10),
            )
        )

    async def ClearAnnotation(
        self, request: ann.ClearAnnotationRequest, context: grpc.aio.ServicerContext
    ) -> ann.ClearAnnotationResponse:
        current = self.versions.get(request.record_id, 0)
        if request.HasField("expected_version") and request.expected_version != current:
            await context.abort(grpc.StatusCode.ABORTED, f"record {request.record_id!r} changed: reload and retry")
        self.cleared.append(request)
        self.sequence += 1
        self.versions[request.record_id] = self.sequence
        return ann.ClearAnnotationResponse(version=self.sequence)

    async def AnnotationHistory(
        self, request: ann.AnnotationHistoryRequest, context: grpc.aio.ServicerContext
    ) -> ann.AnnotationHistoryResponse:
        marks = [r for r in self.recorded if (r.dataset_id, r.record_id) == (request.dataset_id, request.record_id)]
        return ann.AnnotationHistoryResponse(
            entries=[
                ann.HistoryEntry(
                    model_id=r.model_id, change="golden", annotator=r.annotator, run_id=r.run_id, version=n + 3
                )
                for n, r in enumerate(marks)
            ]
        )

    async def ListAnnotations(
        self, request: ann.ListAnnotationsRequest, context: grpc.aio.ServicerContext
    ) -> ann.ListAnnotationsResponse:
        self.list_requests.append(request)
        wanted = set(request.record_ids)
        return ann.ListAnnotationsResponse(
            annotations=[
                a for a in ANNOTATIONS if a.dataset_id == request.dataset_id and (not wanted or a.record_id in wanted)
            ]
        )

    # Label Studio: dataset "ds-1" is linked to project 7; any other dataset is not linked yet.
    async def GetLabelStudioLink(
        self, request: ann.GetLabelStudioLinkRequest, context: grpc.aio.ServicerContext
    ) -> ann.GetLabelStudioLinkResponse:
        if request.dataset_id != "ds-1":
            return ann.GetLabelStudioLinkResponse(configured=True)
        link = ann.LabelStudioLink(
            dataset_id="ds-1", project_id=7, project_url="http://ls/projects/7/data", pushed_tasks=3, linked_at=at(5)
        )
        return ann.GetLabelStudioLinkResponse(configured=True, link=link)

    async def LinkLabelStudio(
        self, request: ann.LinkLabelStudioRequest, context: grpc.aio.ServicerContext
    ) -> ann.LinkLabelStudioResponse:
        self.ls_links.append(request)
        project_id = request.project_id or 8
        url = f"http://ls/projects/{project_id}/data"
        return ann.LinkLabelStudioResponse(
            link=ann.LabelStudioLink(dataset_id=request.dataset_id, project_id=project_id, project_url=url)
        )

    async def PushToLabelStudio(
        self, request: ann.PushToLabelStudioRequest, context: grpc.aio.ServicerContext
    ) -> ann.PushToLabelStudioResponse:
        if request.dataset_id != "ds-1":
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "dataset is not linked to a Label Studio project")
        return ann.PushToLabelStudioResponse(pushed=2, skipped=1)

    async def PullFromLabelStudio(
        self, request: ann.PullFromLabelStudioRequest, context: grpc.aio.ServicerContext
    ) -> ann.PullFromLabelStudioResponse:
        return ann.PullFromLabelStudioResponse(recorded=4, unchanged=1)

    async def QueryRecords(
        self, request: ann.QueryRecordsRequest, context: grpc.aio.ServicerContext
    ) -> ann.QueryRecordsResponse:
        self.queries.append(request)
        passing = [
            ann.QueriedRecord(record_id=record.record_id, disagreement=DISAGREEMENTS.get(record.record_id))
            for record in RECORDS
            if record.record_id in FILTERED.get(request.filter, {record.record_id})
            and request.q.lower() in record.record_id.lower()
        ]
        if request.filter == ann.RECORD_FILTER_NEEDS_REVIEW:
            passing.reverse()  # most disagreed first: not dataset order
        page = passing[request.offset : request.offset + request.limit]
        return ann.QueryRecordsResponse(records=page, total=len(passing))

    async def GetStats(self, request: ann.GetStatsRequest, context: grpc.aio.ServicerContext) -> ann.GetStatsResponse:
        if request.dataset_id != DATASET_ID:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no dataset {request.dataset_id!r}")
        return ann.GetStatsResponse(
            overall=ann.Counts(total=3, golden=1, wrong=1, needs_review=1, differing=1),
            by_model={
                "olmo": ann.Counts(total=3, wrong=1, differing=1),
                "gemma": ann.Counts(total=3, golden=1, needs_review=1, differing=1),
            },
        )

    async def ExportDataset(
        self, request: ann.ExportDatasetRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[ann.ExportDatasetResponse]:
        if request.dataset_id != DATASET_ID:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no dataset {request.dataset_id!r}")
        for chunk in EXPORT_CHUNKS:
            yield ann.ExportDatasetResponse(chunk=chunk)


TOKEN = "unit-test-token-0123456789"
T = TypeVar("T")


class ServerLoop:
    """An event loop running in a daemon thread, for the fake servers."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fake-grpc", daemon=True)
        self.thread.start()

    def run(self, coroutine: Awaitable[T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=30)  # type: ignore[arg-type]

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


class FakeOperations(operations_pb2_grpc.OperationsServiceServicer):
    """What the service host answers about a service's projections (here: one with parked events)
    and its storage (here: a stream with fewer replicas than its settings ask for)."""

    async def GetStatus(
        self, request: operations_pb2.GetStatusRequest, context: grpc.aio.ServicerContext
    ) -> operations_pb2.GetStatusResponse:
        return operations_pb2.GetStatusResponse(
            service="datasets",
            projections=[operations_pb2.ProjectionStatus(name="datasets.datasets", position=40, lag=3, parked=2)],
            storage_warnings=["stream WB_EVENTS has 1 replicas where WB_STREAM_REPLICAS asks for 3"],
        )


@dataclass
class Services:
    datasets: FakeDatasets
    inference: FakeInference
    annotations: FakeAnnotations
    addresses: dict[str, str]


@pytest.fixture(scope="session")
def server_loop() -> Iterator[ServerLoop]:
    loop = ServerLoop()
    yield loop
    loop.stop()


@pytest.fixture
def services(server_loop: ServerLoop) -> Iterator[Services]:
    fakes = Services(FakeDatasets(), FakeInference(), FakeAnnotations(), {})
    registrations = {
        "datasets": GrpcService(
            ds.DESCRIPTOR.services_by_name["DatasetService"],
            fakes.datasets,
            datasets_pb2_grpc.add_DatasetServiceServicer_to_server,
        ),
        "inference": GrpcService(
            inf.DESCRIPTOR.services_by_name["InferenceService"],
            fakes.inference,
            inference_pb2_grpc.add_InferenceServiceServicer_to_server,
        ),
        "annotations": GrpcService(
            ann.DESCRIPTOR.services_by_name["AnnotationService"],
            fakes.annotations,
            annotations_pb2_grpc.add_AnnotationServiceServicer_to_server,
        ),
    }
    operations = GrpcService(
        operations_pb2.DESCRIPTOR.services_by_name["OperationsService"],
        FakeOperations(),
        operations_pb2_grpc.add_OperationsServiceServicer_to_server,
    )
    servers: list[grpc.aio.Server] = []
    for name, service in registrations.items():
        address = f"127.0.0.1:{free_port()}"
        # Only datasets says how its read models do: the others answer health alone, as an older service would.
        served = [service, operations] if name == "datasets" else [service]
        server = server_loop.run(start_grpc_server(address, served))
        servers.append(server.server)
        fakes.addresses[name] = address
    yield fakes
    for server in servers:
        server_loop.run(server.stop(None))


def settings_for(services: Services, tmp_path: Path, **overrides: Any) -> GatewaySettings:
    frontend = tmp_path / "frontend"
    frontend.mkdir(exist_ok=True)
    (frontend / "index.html").write_text("<!doctype html><title>Workbench</title>")
    (frontend / "app.js").write_text("export {};")
    values: dict[str, Any] = {
        "api_token": TOKEN,
        "datasets_addr": services.addresses["datasets"],
        "inference_addr": services.addresses["inference"],
        "annotations_addr": services.addresses["annotations"],
        # Nothing listens there: the live relay keeps retrying in the background, HTTP does not care.
        "nats_url": f"nats://127.0.0.1:{free_port()}",
        "frontend_dir": frontend,
        **overrides,
    }
    return GatewaySettings(**values)


@pytest.fixture
def make_app(services: Services, tmp_path: Path) -> Callable[..., Litestar]:
    """create_app for the fakes, with any setting overridden."""
    # The access list lives in an in-memory event log: the unit tests have no NATS.
    return lambda **overrides: create_app(settings_for(services, tmp_path, **overrides), InMemoryEventStore())


@pytest.fixture
def app(make_app: Callable[..., Litestar]) -> Litestar:
    return make_app()


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app) as test_client:
        yield test_client


@pytest.fixture
def served_gateway(make_app: Callable[..., Litestar]) -> Iterator[str]:
    """The gateway behind uvicorn on a real port, in a thread of its own: its base URL.

    For the tests that need the request body to arrive piece by piece, as from a real client
    (the test client hands the app the whole body at once).
    """
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(make_app(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="gateway", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the gateway did not start under uvicorn")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def token() -> str:
    return TOKEN


@pytest.fixture
def auth() -> dict[str, str]:
    """The headers of an authenticated call."""
    return {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def add_user(client: AsyncTestClient[Litestar], auth: dict[str, str]) -> Callable[[str, str], Awaitable[str]]:
    """Adds a user with a role through the API (as the bootstrap admin); returns their token's headers' token."""

    async def add(name: str, role: str) -> str:
        response = await client.post("/admin/users", json={"name": name, "role": role}, headers=auth)
        assert response.status_code == 201, response.text
        return str(response.json()["token"])

    return add
