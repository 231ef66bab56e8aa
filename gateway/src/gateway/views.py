"""What the HTTP API returns: msgspec Structs, and their conversion from the services' proto messages.

Enums become short lower-case words ("chat", "running", "golden"), timestamps ISO-8601 strings
(null when unset), keys snake_case.
"""

import logging
from datetime import datetime
from typing import Any

import msgspec
import msgspec.structs
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from eventlog import from_timestamp
from workbench.annotations.v1 import annotations_pb2 as ann
from workbench.datasets.v1 import datasets_pb2 as ds
from workbench.inference.v1 import inference_pb2 as inf

log = logging.getLogger(__name__)


def enum_word(enum_name: str, prefix: str) -> str:
    """RUN_STATUS_RUNNING -> running."""
    return enum_name.removeprefix(prefix).lower()


class DatasetView(msgspec.Struct):
    dataset_id: str
    name: str
    format: str
    record_count: int
    sha256: str
    size_bytes: int
    registered_at: datetime | None
    skipped_records: int  # invalid records left out when it was uploaded with skip_invalid


class ProblemView(msgspec.Struct):
    """One problem in an uploaded file: its line (JSONL) or row (CSV, Parquet), the field, why."""

    line: int
    field: str
    reason: str


class ValidationReportView(msgspec.Struct):
    problems: list[ProblemView]
    more: int  # problems beyond the ones listed
    skipped_records: int
    line_word: str  # "line" or "row": how the file's positions are named


class UploadView(msgspec.Struct, omit_defaults=True):
    """The answer to an upload: the new dataset, or the live one with the same content."""

    dataset: DatasetView
    already_registered: bool
    report: ValidationReportView | None = None  # with skip_invalid, when records were left out
    detail: str | None = None  # says which dataset already holds the content


class RecordView(msgspec.Struct):
    """One record of a dataset as stored: its input, its own other fields, the sampling it asks for."""

    record_id: str
    index: int
    input: dict[str, Any]
    metadata: dict[str, Any]
    sampling: dict[str, float | int]  # only the fields the record sets


class RecordsPage(msgspec.Struct):
    records: list[RecordView]
    total: int  # records of the dataset, or those matching q
    offset: int
    limit: int


class SamplingView(msgspec.Struct):
    temperature: float
    top_p: float
    max_tokens: int
    seed: int


class WorkerView(msgspec.Struct):
    worker: str
    state: str  # loading | ready | busy (workers gone are left out)
    since: datetime | None
    detail: str


class ModelView(msgspec.Struct):
    model_id: str
    display_name: str
    backend: str
    revision: str
    max_model_len: int
    default_sampling: SamplingView
    workers: list[WorkerView]


class ReproducibilityView(msgspec.Struct):
    """What reproduces a run: the dataset's file, the model's exact files, the engine, the sampling."""

    dataset_sha256: str
    model_path: str
    model_revision: str
    weights_hash: str
    chat_template_hash: str
    engine: str
    sampling: SamplingView
    sampling_explicit: bool
    json_schema: str


class RunView(msgspec.Struct):
    run_id: str
    dataset_id: str
    model_id: str
    status: str
    total: int
    done: int
    failed: int
    output_tokens: int
    tokens_per_second: float
    eta_seconds: float
    error: str
    engine: str
    model_revision: str
    sampling: SamplingView
    requested_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    request_id: str
    waiting_for: str
    reproducibility: ReproducibilityView


class CellResultView(msgspec.Struct):
    """One model's answer to one record, as the results grid shows it."""

    run_id: str
    output_text: str
    finish_reason: str
    prompt_tokens: int
    output_tokens: int
    latency_ms: float
    error: str


class ResultView(CellResultView):
    """A result as pushed over the WebSocket: a cell plus where it belongs."""

    dataset_id: str
    model_id: str
    record_id: str


class CellAnnotationView(msgspec.Struct):
    kind: str
    output_text: str
    note: str
    annotator: str
    version: int
    recorded_at: datetime | None
    run_id: str  # the run whose answer was judged
    source: str  # "workbench" or "label_studio"


class AnnotationView(CellAnnotationView):
    """An annotation with the record and model it judges."""

    dataset_id: str
    record_id: str
    model_id: str


class ProgressView(msgspec.Struct):
    run_id: str
    dataset_id: str
    model_id: str
    done: int
    total: int
    failed: int
    tokens_per_second: float
    eta_seconds: float


def dataset_view(d: ds.Dataset) -> DatasetView:
    return DatasetView(
        dataset_id=d.dataset_id,
        name=d.name,
        format=enum_word(ds.RecordFormat.Name(d.format), "RECORD_FORMAT_"),
        record_count=d.record_count,
        sha256=d.sha256,
        size_bytes=d.size_bytes,
        registered_at=from_timestamp(d.registered_at),
        skipped_records=d.skipped_records,
    )


def report_view(r: ds.ValidationReport) -> ValidationReportView:
    return ValidationReportView(
        problems=[ProblemView(line=p.line, field=p.field, reason=p.reason) for p in r.problems],
        more=r.more,
        skipped_records=r.skipped_records,
        line_word=r.line_word or "line",
    )


def upload_view(reply: ds.UploadDatasetResponse) -> UploadView:
    dataset = dataset_view(reply.dataset)
    if reply.already_registered:
        uploaded = dataset.registered_at.isoformat().replace("+00:00", "Z") if dataset.registered_at else "earlier"
        detail = f"the same content is already dataset {dataset.dataset_id} ({dataset.name}, uploaded {uploaded})"
        return UploadView(dataset=dataset, already_registered=True, detail=detail)
    skipped = reply.report.skipped_records or len(reply.report.problems)
    return UploadView(dataset=dataset, already_registered=False, report=report_view(reply.report) if skipped else None)


def sampling_view(s: inf.SamplingParams) -> SamplingView:
    return SamplingView(temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_tokens, seed=s.seed)


def worker_state_word(state: inf.WorkerState.ValueType) -> str:
    """WORKER_STATE_LOADING -> loading, as /admin/models and the live worker frames name it."""
    return enum_word(inf.WorkerState.Name(state), "WORKER_STATE_")


def model_view(m: inf.Model) -> ModelView:
    # The model's path stays inside: it names a directory or provider the browser has no use for.
    return ModelView(
        model_id=m.model_id,
        display_name=m.display_name or m.model_id,
        backend=m.backend,
        revision=m.revision,
        max_model_len=m.max_model_len,
        default_sampling=sampling_view(m.default_sampling),
        workers=[
            WorkerView(
                worker=w.worker,
                state=worker_state_word(w.state),
                since=from_timestamp(w.since),
                detail=w.detail,
            )
            for w in m.workers
        ],
    )


def run_view(r: inf.Run) -> RunView:
    return RunView(
        run_id=r.run_id,
        dataset_id=r.dataset_id,
        model_id=r.model_id,
        status=enum_word(inf.RunStatus.Name(r.status), "RUN_STATUS_"),
        total=r.total,
        done=r.done,
        failed=r.failed,
        output_tokens=r.output_tokens,
        tokens_per_second=r.tokens_per_second,
        eta_seconds=r.eta_seconds,
        error=r.error,
        engine=r.engine,
        model_revision=r.model_revision,
        sampling=sampling_view(r.sampling),
        requested_at=from_timestamp(r.requested_at),
        started_at=from_timestamp(r.started_at),
        finished_at=from_timestamp(r.finished_at),
        request_id=r.request_id,
        waiting_for=r.waiting_for,
        reproducibility=reproducibility_view(r.reproducibility),
    )


def reproducibility_view(p: inf.Reproducibility) -> ReproducibilityView:
    return ReproducibilityView(
        dataset_sha256=p.dataset_sha256,
        model_path=p.model_path,
        model_revision=p.model_revision,
        weights_hash=p.weights_hash,
        chat_template_hash=p.chat_template_hash,
        engine=p.engine,
        sampling=sampling_view(p.sampling),
        sampling_explicit=p.sampling_explicit,
        json_schema=p.json_schema,
    )


def cell_result_view(r: inf.Result | inf.ResultRecorded) -> CellResultView:
    return CellResultView(
        run_id=r.run_id,
        output_text=r.output_text,
        finish_reason=r.finish_reason,
        prompt_tokens=r.prompt_tokens,
        output_tokens=r.output_tokens,
        latency_ms=r.latency_ms,
        error=r.error,
    )


def result_view(r: inf.Result | inf.ResultRecorded) -> ResultView:
    cell = msgspec.structs.asdict(cell_result_view(r))
    return ResultView(**cell, dataset_id=r.dataset_id, model_id=r.model_id, record_id=r.record_id)


def annotation_kind_word(kind: ann.AnnotationKind.ValueType) -> str:
    return enum_word(ann.AnnotationKind.Name(kind), "ANNOTATION_KIND_")


def cell_annotation_view(a: ann.Annotation) -> CellAnnotationView:
    return CellAnnotationView(
        kind=annotation_kind_word(a.kind),
        output_text=a.output_text,
        note=a.note,
        annotator=a.annotator,
        version=a.version,
        recorded_at=from_timestamp(a.recorded_at),
        run_id=a.run_id,
        source=a.source,
    )


class HistoryEntryView(msgspec.Struct):
    model_id: str
    change: str  # "golden", "fixed", "wrong" or "cleared"
    output_text: str
    note: str
    annotator: str
    source: str
    run_id: str
    version: int
    at: datetime | None


def history_entry_view(e: ann.HistoryEntry) -> HistoryEntryView:
    return HistoryEntryView(
        model_id=e.model_id,
        change=e.change,
        output_text=e.output_text,
        note=e.note,
        annotator=e.annotator,
        source=e.source,
        run_id=e.run_id,
        version=e.version,
        at=from_timestamp(e.at),
    )


def annotation_view(a: ann.Annotation) -> AnnotationView:
    cell = msgspec.structs.asdict(cell_annotation_view(a))
    return AnnotationView(**cell, dataset_id=a.dataset_id, record_id=a.record_id, model_id=a.model_id)


def progress_view(p: inf.RunProgress) -> ProgressView:
    return ProgressView(
        run_id=p.run_id,
        dataset_id=p.dataset_id,
        model_id=p.model_id,
        done=p.done,
        total=p.total,
        failed=p.failed,
        tokens_per_second=p.tokens_per_second,
        eta_seconds=p.eta_seconds,
    )


def record_input(r: ds.Record) -> dict[str, Any]:
    """{"prompt": ...} or {"messages": [{"role", "content"}, ...]}, as the record was written."""
    if r.messages:
        return {"messages": [{"role": m.role, "content": m.content} for m in r.messages]}
    return {"prompt": r.prompt}


def record_metadata(r: ds.Record) -> dict[str, Any]:
    """The record's other fields, as the JSON object the service keeps them in."""
    if not r.metadata_json:
        return {}
    try:
        metadata = msgspec.json.decode(r.metadata_json)
    except msgspec.DecodeError:
        metadata = None
    if not isinstance(metadata, dict):
        # One broken record must not break the page it is on: show it without its metadata.
        log.warning("record %r of a dataset has metadata that is not a JSON object", r.record_id)
        return {}
    return metadata


def record_sampling(r: ds.Record) -> dict[str, float | int]:
    """Only the fields the record sets: an unset one is the run's to choose, not zero."""
    s = r.sampling
    fields: dict[str, float | int | None] = {
        "temperature": s.temperature if s.HasField("temperature") else None,
        "top_p": s.top_p if s.HasField("top_p") else None,
        "max_tokens": s.max_tokens if s.HasField("max_tokens") else None,
        "seed": s.seed if s.HasField("seed") else None,
    }
    return {name: value for name, value in fields.items() if value is not None}


def record_view(r: ds.Record) -> RecordView:
    return RecordView(
        record_id=r.record_id,
        index=r.index,
        input=record_input(r),
        metadata=record_metadata(r),
        sampling=record_sampling(r),
    )


def message_fields(message: Message) -> dict[str, Any]:
    """Every field of a run event as JSON-ready values (timestamps as ISO-8601 strings or null)."""
    fields: dict[str, Any] = {}
    for descriptor in message.DESCRIPTOR.fields:
        value = getattr(message, descriptor.name)
        if isinstance(value, Timestamp):
            moment = from_timestamp(value)
            fields[descriptor.name] = moment.isoformat() if moment else None
        elif isinstance(value, Message):
            fields[descriptor.name] = message_fields(value)
        else:
            fields[descriptor.name] = value
    return fields
