"""An upload streams to DatasetService.UploadDataset: a header, the file in 256 KiB chunks, a trailer.

The file comes as a multipart form's "file" field (a browser) or as the raw request body (curl).
"""

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from workbench.datasets.v1 import datasets_pb2 as ds

from .conftest import Services

CHUNK = 256 * 1024


def jsonl(count: int, width: int = 100, start: int = 0) -> bytes:
    return b"".join(json.dumps({"prompt": f"{i:06d} " + "x" * width}).encode() + b"\n" for i in range(start, count))


def with_bad_lines(count: int, bad: set[int]) -> bytes:
    """count lines; those numbered in bad (from 1) have a number for a prompt."""
    lines = [{"prompt": 7 if n in bad else f"p{n}"} for n in range(1, count + 1)]
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


async def test_a_file_goes_to_the_service_in_256_kib_chunks(
    client: AsyncTestClient[Litestar], auth: dict[str, str], services: Services
) -> None:
    content = jsonl(6000)  # about 660 KiB
    assert len(content) > 2 * CHUNK

    response = await client.post("/admin/datasets/upload", files={"file": ("cands.jsonl", content)}, headers=auth)

    assert response.status_code == 201, response.text
    upload = services.datasets.uploads[0]
    assert upload.name == "cands.jsonl"
    assert upload.skip_invalid is False
    assert upload.chunks[:2] == [CHUNK, CHUNK]
    assert len(upload.chunks) == 3
    assert upload.trailer is not None
    assert upload.trailer.size_bytes == len(upload.data)
    assert upload.trailer.sha256 == hashlib.sha256(upload.data).hexdigest()
    assert bytes(upload.data) == content
    assert response.json() == {
        "dataset": {
            "dataset_id": "ds-new",
            "name": "cands.jsonl",
            "format": "prompt",
            "record_count": 6000,
            "sha256": hashlib.sha256(content).hexdigest(),
            "size_bytes": len(content),
            "registered_at": "2025-10-09T08:53:25Z",
            "skipped_records": 0,
        },
        "already_registered": False,
    }


async def test_a_raw_body_goes_to_the_service_in_256_kib_chunks_named_for_its_type(
    client: AsyncTestClient[Litestar], auth: dict[str, str], services: Services
) -> None:
    content = jsonl(6000)

    response = await client.post(
        "/admin/datasets/upload", content=content, headers={**auth, "Content-Type": "application/x-ndjson"}
    )

    assert response.status_code == 201, response.text
    upload = services.datasets.uploads[0]
    assert upload.name == "upload.jsonl"
    assert upload.chunks == [CHUNK, CHUNK, len(content) - 2 * CHUNK]
    assert bytes(upload.data) == content
    assert upload.trailer == ds.UploadTrailer(size_bytes=len(content), sha256=hashlib.sha256(content).hexdigest())
    assert response.json()["dataset"]["record_count"] == 6000


@pytest.mark.parametrize(
    ("content_type", "name"),
    [
        ("application/x-ndjson", "upload.jsonl"),
        ("application/jsonl; charset=utf-8", "upload.jsonl"),
        ("text/csv", "upload.csv"),
        ("application/vnd.apache.parquet", "upload.parquet"),
        ("application/octet-stream", "upload"),  # no extension: the service tells the format from the content
        ("", "upload"),
    ],
)
async def test_a_raw_body_is_named_for_its_content_type_unless_name_is_given(
    client: AsyncTestClient[Litestar], auth: dict[str, str], services: Services, content_type: str, name: str
) -> None:
    headers = {**auth, "Content-Type": content_type} if content_type else auth
    default = await client.post("/admin/datasets/upload", content=b'{"prompt": "a"}\n', headers=headers)
    named = await client.post(
        "/admin/datasets/upload", params={"name": "../mine.jsonl"}, content=b'{"prompt": "b"}\n', headers=headers
    )

    assert (default.status_code, named.status_code) == (201, 201)
    # As sent: the datasets service makes names safe, for every client alike.
    assert [u.name for u in services.datasets.uploads] == [name, "../mine.jsonl"]


async def test_other_form_fields_are_ignored_and_the_name_is_passed_on_as_sent(
    client: AsyncTestClient[Litestar], auth: dict[str, str], services: Services
) -> None:
    response = await client.post(
        "/admin/datasets/upload",
        data={"note": "ignored"},
        files={"file": ("../../etc/evil.jsonl", b'{"prompt": "hi"}\n')},
        headers=auth,
    )
    renamed = await client.post(
        "/admin/datasets/upload",
        params={"name": "chosen.jsonl"},
        files={"file": ("browser.jsonl", b'{"prompt": "other"}\n')},
        headers=auth,
    )

    assert response.status_code == 201, response.text
    assert renamed.status_code == 201, renamed.text
    assert [u.name for u in services.datasets.uploads] == ["../../etc/evil.jsonl", "chosen.jsonl"]
    assert bytes(services.datasets.uploads[0].data) == b'{"prompt": "hi"}\n'


@pytest.mark.parametrize("shape", ["multipart", "raw"])
async def test_skip_invalid_registers_the_valid_records_and_reports_the_others(
    client: AsyncTestClient[Litestar], auth: dict[str, str], services: Services, shape: str
) -> None:
    content = with_bad_lines(10, bad={2, 4, 5, 8, 9})
    if shape == "multipart":
        response = await client.post(
            "/admin/datasets/upload",
            params={"skip_invalid": "true"},
            files={"file": ("mixed.jsonl", content)},
            headers=auth,
        )
    else:
        response = await client.post(
            "/admin/datasets/upload",
            params={"skip_invalid": "true", "name": "mixed.jsonl"},
            content=content,
            headers={**auth, "Content-Type": "application/x-ndjson"},
        )

    assert response.status_code == 201, response.text
    assert services.datasets.uploads[0].skip_invalid is True
    body = response.json()
    assert (body["dataset"]["record_count"], body["dataset"]["skipped_records"]) == (5, 5)
    assert body["already_registered"] is False
    must_be_a_string = [{"line": n, "field": "prompt", "reason": "must be a string"} for n in (2, 4, 5)]
    assert body["report"] == {"problems": must_be_a_string, "more": 2, "skipped_records": 5, "line_word": "line"}


async def test_a_file_with_bad_lines_is_refused_with_its_lines_and_reasons(
    client: AsyncTestClient[Litestar], auth: dict[str, str], services: Services
) -> None:
    response = await client.post(
        "/admin/datasets/upload", files={"file": ("bad.jsonl", with_bad_lines(10, bad={3, 6, 7, 10}))}, headers=auth
    )

    assert response.status_code == 400
    assert response.json() == {
        "error": "INVALID_ARGUMENT",
        "detail": 'line 3: field "prompt" must be a string',
        "problems": [{"line": n, "field": "prompt", "reason": "must be a string"} for n in (3, 6, 7)],
        "more": 1,
        "line_word": "line",
    }
    assert services.datasets.registered == {}


async def test_a_refused_csv_names_rows(
    client: AsyncTestClient[Litestar], auth: dict[str, str], services: Services
) -> None:
    response = await client.post(
        "/admin/datasets/upload", content=b"id,prompt\nr1,hello\n", headers={**auth, "Content-Type": "text/csv"}
    )

    assert response.status_code == 400
    body = response.json()
    assert body["line_word"] == "row"
    assert [p["line"] for p in body["problems"]] == [1, 2]


async def test_content_already_registered_answers_200_with_that_dataset(
    client: AsyncTestClient[Litestar], auth: dict[str, str], services: Services
) -> None:
    content = jsonl(10)
    first = await client.post("/admin/datasets/upload", files={"file": ("cands.jsonl", content)}, headers=auth)
    again = await client.post(
        "/admin/datasets/upload",
        params={"name": "copy.jsonl"},
        content=content,
        headers={**auth, "Content-Type": "application/x-ndjson"},
    )

    assert first.status_code == 201
    assert again.status_code == 200, again.text
    body = again.json()
    assert body["already_registered"] is True
    assert body["dataset"] == first.json()["dataset"]
    assert body["detail"] == "the same content is already dataset ds-new (cands.jsonl, uploaded 2025-10-09T08:53:25Z)"
    assert "report" not in body
    assert len(services.datasets.registered) == 1


async def test_a_service_that_refuses_early_stops_the_upload_with_its_reason(
    client: AsyncTestClient[Litestar], auth: dict[str, str], services: Services
) -> None:
    response = await client.post("/admin/datasets/upload", files={"file": ("tool.exe", jsonl(20000))}, headers=auth)

    assert response.status_code == 400
    assert response.json() == {"error": "INVALID_ARGUMENT", "detail": "only .jsonl files are accepted"}
    assert not services.datasets.uploads[0].completed


async def test_a_form_without_a_file_field_never_reaches_the_service(
    client: AsyncTestClient[Litestar], auth: dict[str, str], services: Services
) -> None:
    response = await client.post("/admin/datasets/upload", files={"dataset": ("a.jsonl", b"{}")}, headers=auth)

    assert response.status_code == 400
    assert response.json()["detail"] == 'the form has no field named "file": send the dataset file in it'
    assert services.datasets.uploads == []


async def test_a_multipart_body_without_a_boundary_is_a_400(
    client: AsyncTestClient[Litestar], auth: dict[str, str], services: Services
) -> None:
    response = await client.post(
        "/admin/datasets/upload", content=b"x", headers={**auth, "Content-Type": "multipart/form-data"}
    )

    assert response.status_code == 400
    assert "boundary" in response.json()["detail"]
    assert services.datasets.uploads == []


@pytest.mark.parametrize("shape", ["multipart", "raw"])
async def test_a_file_over_the_limit_is_a_413_and_the_stream_is_cut_before_its_end(
    make_app: Callable[..., Litestar], auth: dict[str, str], services: Services, shape: str
) -> None:
    content = jsonl(4000)
    async with AsyncTestClient(make_app(max_upload_bytes=300 * 1024)) as client:
        if shape == "multipart":
            response = await client.post("/admin/datasets/upload", files={"file": ("big.jsonl", content)}, headers=auth)
        else:
            response = await client.post(
                "/admin/datasets/upload", content=content, headers={**auth, "Content-Type": "application/x-ndjson"}
            )

    assert response.status_code == 413
    assert response.json()["detail"] == "the file is larger than the limit of 307200 bytes (WB_MAX_UPLOAD_BYTES)"
    # The gateway cancels the call after the first chunk and never sends the trailer, without
    # which the datasets service registers nothing.
    assert all(len(upload.data) <= CHUNK for upload in services.datasets.uploads)
    assert all(upload.trailer is None for upload in services.datasets.uploads)


async def until(condition: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(what)
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("shape", ["multipart", "raw"])
async def test_the_service_has_the_first_chunk_before_the_client_sends_the_rest(
    served_gateway: str, auth: dict[str, str], services: Services, shape: str
) -> None:
    head, tail = jsonl(3000), jsonl(6000, start=3000)  # each more than a chunk
    boundary = "workbench-test-boundary"
    before, after = b"", b""
    headers = {**auth, "Content-Type": "application/x-ndjson"}
    if shape == "multipart":
        before = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="streamed.jsonl"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        after = f"\r\n--{boundary}--\r\n".encode()
        headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"

    async def body() -> AsyncIterator[bytes]:
        yield before + head
        # Were the gateway to hold the body until its end, the service would see nothing now.
        await until(
            lambda: bool(services.datasets.uploads and services.datasets.uploads[0].chunks),
            "the datasets service received nothing while the client was still sending",
        )
        yield tail + after

    async with httpx.AsyncClient(base_url=served_gateway, timeout=30) as http:
        response = await http.post("/admin/datasets/upload", content=body(), headers=headers)

    assert response.status_code == 201, response.text
    upload = services.datasets.uploads[0]
    assert bytes(upload.data) == head + tail
    assert max(upload.chunks) == CHUNK
    assert upload.trailer is not None and upload.trailer.sha256 == hashlib.sha256(head + tail).hexdigest()
