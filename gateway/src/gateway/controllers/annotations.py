"""Annotations (golden / fixed / wrong) and the export of the curated dataset."""

import re
from collections.abc import AsyncIterator
from typing import Literal

import msgspec
from litestar import Controller, get, post
from litestar.exceptions import ClientException
from litestar.params import Parameter
from litestar.response import Stream

from gateway.auth import QUERY_TOKEN_OPT
from gateway.clients import Clients
from gateway.views import AnnotationView, annotation_view
from workbench.annotations.v1 import annotations_pb2 as ann

EXPORT_FORMATS = {"jsonl": ann.EXPORT_FORMAT_JSONL}
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
    annotator: str = ""
    expected_version: int | None = None  # the record's annotation_version as last seen


class FixBody(AnnotationBody, forbid_unknown_fields=True):
    fixed_text: str = ""


class AnnotateBody(FixBody, forbid_unknown_fields=True, kw_only=True):
    """An annotation named wholly in the body: ids arrive byte for byte, as no URL path carries them."""

    kind: Literal["golden", "fixed", "wrong"]
    dataset_id: str
    record_id: str


async def record(
    clients: Clients,
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
        annotator=body.annotator,
        expected_version=body.expected_version,
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

    @post("/", operation_id="recordAnnotation")
    async def annotate(self, clients: Clients, data: AnnotateBody) -> dict[str, AnnotationView]:
        """Records a golden, fixed or wrong annotation; the record's own id goes in the body, exact."""
        if data.fixed_text and data.kind != "fixed":
            raise ClientException('"fixed_text" goes with kind "fixed" only')
        return await record(clients, KINDS[data.kind], data.dataset_id, data.record_id, data, data.fixed_text)

    # The seed's forms: candidate_id is the record's own id, URL-encoded (see path_record_id).
    @post("/golden/{dataset_id:str}/{candidate_id:path}", operation_id="markGolden")
    async def golden(
        self, clients: Clients, dataset_id: str, candidate_id: str, data: AnnotationBody
    ) -> dict[str, AnnotationView]:
        return await record(clients, ann.ANNOTATION_KIND_GOLDEN, dataset_id, path_record_id(candidate_id), data)

    @post("/fix/{dataset_id:str}/{candidate_id:path}", operation_id="markFixed")
    async def fix(
        self, clients: Clients, dataset_id: str, candidate_id: str, data: FixBody
    ) -> dict[str, AnnotationView]:
        return await record(
            clients, ann.ANNOTATION_KIND_FIXED, dataset_id, path_record_id(candidate_id), data, data.fixed_text
        )

    @post("/wrong/{dataset_id:str}/{candidate_id:path}", operation_id="markWrong")
    async def wrong(
        self, clients: Clients, dataset_id: str, candidate_id: str, data: AnnotationBody
    ) -> dict[str, AnnotationView]:
        return await record(clients, ann.ANNOTATION_KIND_WRONG, dataset_id, path_record_id(candidate_id), data)


def export_file_name(dataset_id: str, extension: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", dataset_id).strip("._") or "dataset"
    return f"{stem[:100]}-curated.{extension}"


async def _chunks(first: bytes, rest: AsyncIterator[ann.ExportDatasetResponse]) -> AsyncIterator[bytes]:
    yield first
    async for reply in rest:
        yield reply.chunk


class ExportController(Controller):
    path = "/export"
    tags = ["annotations"]

    @get("/{dataset_id:str}", operation_id="exportDataset", opt={QUERY_TOKEN_OPT: True})
    async def export(
        self,
        clients: Clients,
        dataset_id: str,
        format: str = "jsonl",
        kinds: str = Parameter(default="", description="comma-separated: golden,fixed,wrong; empty: golden and fixed"),
    ) -> Stream:
        """Streams the curated records as a download (one OpenAI chat fine-tune line per record)."""
        if format not in EXPORT_FORMATS:
            raise ClientException(f"unknown export format {format!r}: use one of {', '.join(EXPORT_FORMATS)}")
        wanted = [k.strip() for k in kinds.split(",") if k.strip()]
        if unknown := [k for k in wanted if k not in KINDS]:
            raise ClientException(f"unknown annotation kind {unknown[0]!r}: use golden, fixed or wrong")
        request = ann.ExportDatasetRequest(
            dataset_id=dataset_id, format=EXPORT_FORMATS[format], kinds=[KINDS[k] for k in wanted]
        )
        replies = aiter(clients.annotations.ExportDataset(request, timeout=EXPORT_TIMEOUT_S))
        # Wait for the first chunk so that a NOT_FOUND still becomes a 404, not a broken 200.
        first = await anext(replies, ann.ExportDatasetResponse())
        return Stream(
            _chunks(first.chunk, replies),
            media_type="application/x-ndjson",
            headers={"Content-Disposition": f'attachment; filename="{export_file_name(dataset_id, format)}"'},
        )
