"""Annotations (golden / fixed / wrong) and the export of the curated dataset."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Literal

import msgspec
from litestar import Controller, get, post
from litestar.exceptions import ClientException
from litestar.params import Parameter
from litestar.response import Stream

from gateway.access import Principal, Role
from gateway.auth import ROLE_OPT
from gateway.clients import Clients
from gateway.integers import Int64
from gateway.views import AnnotationView, HistoryEntryView, annotation_view, history_entry_view
from workbench.annotations.v1 import annotations_pb2 as ann


class DownloadFormat(msgspec.Struct, frozen=True):
    """A download format: what the annotations service is asked for, and how the file is named and typed."""

    format: ann.ExportFormat.ValueType
    extension: str
    media_type: str


EXPORT_FORMATS = {
    "jsonl": DownloadFormat(ann.EXPORT_FORMAT_JSONL, "jsonl", "application/x-ndjson"),
    "json": DownloadFormat(ann.EXPORT_FORMAT_JSON, "json", "application/json"),
    "csv": DownloadFormat(ann.EXPORT_FORMAT_CSV, "csv", "text/csv"),
    "label_studio": DownloadFormat(ann.EXPORT_FORMAT_LABEL_STUDIO, "json", "application/json"),
    "openai_chat": DownloadFormat(ann.EXPORT_FORMAT_OPENAI_CHAT, "jsonl", "application/x-ndjson"),
}
# An export streams to the browser as fast as it reads: a big one over a slow link takes long.
EXPORT_TIMEOUT_S = 3600.0
KINDS = {
    "golden": ann.ANNOTATION_KIND_GOLDEN,
    "fixed": ann.ANNOTATION_KIND_FIXED,
    "wrong": ann.ANNOTATION_KIND_WRONG,
}


class AnnotationBody(msgspec.Struct, forbid_unknown_fields=True):
    model_id: str
    note: str = ""
    expected_version: Int64 | None = None  # the record's annotation_version as last seen
    run_id: str = ""  # the run whose answer was shown and judged ("": the model's latest)


class ClearBody(msgspec.Struct, forbid_unknown_fields=True):
    """Undo a mark: the ids in the body, exact."""

    dataset_id: str
    record_id: str
    model_id: str
    expected_version: Int64 | None = None


class ClearedView(msgspec.Struct):
    version: int  # the record's annotation version after the clear


class FixBody(AnnotationBody, forbid_unknown_fields=True):
    fixed_text: str = ""


class AnnotateBody(FixBody, forbid_unknown_fields=True, kw_only=True):
    """An annotation named wholly in the body: ids arrive byte for byte, as no URL path carries them."""

    kind: Literal["golden", "fixed", "wrong"]
    dataset_id: str
    record_id: str


async def record(
    clients: Clients,
    principal: Principal,
    kind: ann.AnnotationKind.ValueType,
    dataset_id: str,
    record_id: str,
    body: AnnotationBody,
    fixed_text: str = "",
) -> dict[str, AnnotationView]:
    if kind == ann.ANNOTATION_KIND_FIXED and not fixed_text.strip():
        raise ClientException('"fixed_text" must hold the corrected answer')
    request = ann.RecordAnnotationRequest(
        dataset_id=dataset_id,
        record_id=record_id,
        model_id=body.model_id,
        kind=kind,
        fixed_text=fixed_text,
        note=body.note,
        annotator=principal.name,
        expected_version=body.expected_version,
        run_id=body.run_id,
    )
    reply = await clients.annotations.RecordAnnotation(request)
    return {"annotation": annotation_view(reply.annotation)}


def path_record_id(candidate_id: str) -> str:
    # A {:path} parameter keeps its leading slash. The router has already normalised the path
    # ("a/" and "/a" arrive as "a", "a//b" as "a/b", an id "%2F" finds no route): ids holding "/"
    # or "%" come through exact only in the body of POST /admin/annotations.
    return candidate_id.removeprefix("/")


class AnnotationController(Controller):
    path = "/annotations"
    tags = ["annotations"]

    @post("/", operation_id="recordAnnotation", opt={ROLE_OPT: Role.ANNOTATOR})
    async def annotate(self, clients: Clients, principal: Principal, data: AnnotateBody) -> dict[str, AnnotationView]:
        """Records a golden, fixed or wrong annotation; the record's own id goes in the body, exact."""
        if data.fixed_text and data.kind != "fixed":
            raise ClientException('"fixed_text" goes with kind "fixed" only')
        return await record(
            clients, principal, KINDS[data.kind], data.dataset_id, data.record_id, data, data.fixed_text
        )

    @post("/clear", operation_id="clearAnnotation", opt={ROLE_OPT: Role.ANNOTATOR}, status_code=200)
    async def clear(self, clients: Clients, principal: Principal, data: ClearBody) -> ClearedView:
        """Undo: removes the model's current mark on the record (its history keeps it); 409 when the
        record changed since expected_version or has no mark to clear."""
        request = ann.ClearAnnotationRequest(
            dataset_id=data.dataset_id,
            record_id=data.record_id,
            model_id=data.model_id,
            annotator=principal.name,
            expected_version=data.expected_version,
        )
        return ClearedView(version=(await clients.annotations.ClearAnnotation(request)).version)

    @get("/history", operation_id="annotationHistory", opt={ROLE_OPT: Role.VIEWER})
    async def history(self, clients: Clients, dataset_id: str, record_id: str) -> dict[str, list[HistoryEntryView]]:
        """Every change of one record's marks, oldest first: who, when, what (ids as query parameters, exact)."""
        reply = await clients.annotations.AnnotationHistory(
            ann.AnnotationHistoryRequest(dataset_id=dataset_id, record_id=record_id)
        )
        return {"history": [history_entry_view(entry) for entry in reply.entries]}

    # The seed's forms: candidate_id is the record's own id, URL-encoded (see path_record_id).
    @post("/golden/{dataset_id:str}/{candidate_id:path}", operation_id="markGolden", opt={ROLE_OPT: Role.ANNOTATOR})
    async def golden(
        self, clients: Clients, principal: Principal, dataset_id: str, candidate_id: str, data: AnnotationBody
    ) -> dict[str, AnnotationView]:
        return await record(
            clients, principal, ann.ANNOTATION_KIND_GOLDEN, dataset_id, path_record_id(candidate_id), data
        )

    @post("/fix/{dataset_id:str}/{candidate_id:path}", operation_id="markFixed", opt={ROLE_OPT: Role.ANNOTATOR})
    async def fix(
        self, clients: Clients, principal: Principal, dataset_id: str, candidate_id: str, data: FixBody
    ) -> dict[str, AnnotationView]:
        return await record(
            clients,
            principal,
            ann.ANNOTATION_KIND_FIXED,
            dataset_id,
            path_record_id(candidate_id),
            data,
            data.fixed_text,
        )

    @post("/wrong/{dataset_id:str}/{candidate_id:path}", operation_id="markWrong", opt={ROLE_OPT: Role.ANNOTATOR})
    async def wrong(
        self, clients: Clients, principal: Principal, dataset_id: str, candidate_id: str, data: AnnotationBody
    ) -> dict[str, AnnotationView]:
        return await record(
            clients, principal, ann.ANNOTATION_KIND_WRONG, dataset_id, path_record_id(candidate_id), data
        )


def export_file_name(extension: str, now: datetime | None = None) -> str:
    """The download's name, dated in UTC: golden_dataset_2025-01-31.jsonl."""
    return f"golden_dataset_{(now or datetime.now(UTC)).astimezone(UTC):%Y-%m-%d}.{extension}"


async def _chunks(first: bytes, rest: AsyncIterator[ann.ExportDatasetResponse]) -> AsyncIterator[bytes]:
    yield first
    async for reply in rest:
        yield reply.chunk


class ExportController(Controller):
    path = "/export"
    tags = ["annotations"]

    @get("/{dataset_id:str}", operation_id="exportDataset", opt={ROLE_OPT: Role.ANNOTATOR})
    async def export(
        self,
        clients: Clients,
        dataset_id: str,
        format: str = "jsonl",
        kinds: str = Parameter(default="", description="comma-separated: golden,fixed,wrong; empty: golden and fixed"),
    ) -> Stream:
        """Streams the curated (record, model) pairs as a dated download in the format asked."""
        if format not in EXPORT_FORMATS:
            raise ClientException(f"unknown export format {format!r}: use one of {', '.join(EXPORT_FORMATS)}")
        wanted = [k.strip() for k in kinds.split(",") if k.strip()]
        if unknown := [k for k in wanted if k not in KINDS]:
            raise ClientException(f"unknown annotation kind {unknown[0]!r}: use golden, fixed or wrong")
        download = EXPORT_FORMATS[format]
        request = ann.ExportDatasetRequest(
            dataset_id=dataset_id, format=download.format, kinds=[KINDS[k] for k in wanted]
        )
        replies = aiter(clients.annotations.ExportDataset(request, timeout=EXPORT_TIMEOUT_S))
        # Wait for the first chunk so that a NOT_FOUND still becomes a 404, not a broken 200.
        first = await anext(replies, ann.ExportDatasetResponse())
        return Stream(
            _chunks(first.chunk, replies),
            media_type=download.media_type,
            headers={"Content-Disposition": f'attachment; filename="{export_file_name(download.extension)}"'},
        )
