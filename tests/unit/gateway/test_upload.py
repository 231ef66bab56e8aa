"""An upload streams to DatasetService.UploadDataset: a header, then the file in 256 KiB chunks."""

import hashlib
import json
from collections.abc import Callable

from litestar import Litestar
from litestar.testing import AsyncTestClient


def jsonl(count: int, width: int = 100) -> bytes:
    return b"".join(json.dumps({"prompt": f"{i:06d} " + "x" * width}).encode() + b"\n" for i in range(count))


async def test_a_file_goes_to_the_service_in_256_kib_chunks(
    client: AsyncTestClient[Litestar], auth: dict[str, str], services
) -> None:
    content = jsonl(6000)  # about 660 KiB
    assert len(content) > 2 * 256 * 1024

    response = await client.post("/admin/datasets/upload", files={"file": ("cands.jsonl", content)}, headers=auth)

    assert response.status_code == 201, response.text
    upload = services.datasets.uploads[0]
    assert upload.name == "cands.jsonl"
    assert upload.chunks[:2] == [256 * 1024, 256 * 1024]
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
        }
    }


async def test_other_form_fields_are_ignored_and_the_name_is_made_safe(
    client: AsyncTestClient[Litestar], auth: dict[str, str], services
) -> None:
    response = await client.post(
        "/admin/datasets/upload",
        data={"note": "ignored"},
        files={"file": ("../../etc/evil.jsonl", b'{"prompt": "hi"}\n')},
        headers=auth,
    )

    assert response.status_code == 201, response.text
    # As the browser sent it: the datasets service makes names safe, for every client alike.
    assert services.datasets.uploads[0].name == "../../etc/evil.jsonl"
    assert bytes(services.datasets.uploads[0].data) == b'{"prompt": "hi"}\n'


async def test_a_service_that_refuses_early_stops_the_upload_with_its_reason(
    client: AsyncTestClient[Litestar], auth: dict[str, str], services
) -> None:
    response = await client.post("/admin/datasets/upload", files={"file": ("tool.exe", jsonl(20000))}, headers=auth)

    assert response.status_code == 400
    assert response.json() == {"error": "INVALID_ARGUMENT", "detail": "only .jsonl files are accepted"}
    assert not services.datasets.uploads[0].completed


async def test_a_form_without_a_file_field_never_reaches_the_service(
    client: AsyncTestClient[Litestar], auth: dict[str, str], services
) -> None:
    response = await client.post("/admin/datasets/upload", files={"dataset": ("a.jsonl", b"{}")}, headers=auth)

    assert response.status_code == 400
    assert response.json()["detail"] == 'the form has no field named "file": send the dataset file in it'
    assert services.datasets.uploads == []


async def test_a_body_that_is_not_multipart_is_a_400(client: AsyncTestClient[Litestar], auth: dict[str, str]) -> None:
    response = await client.post("/admin/datasets/upload", content=b'{"prompt": "x"}', headers=auth)

    assert response.status_code == 400
    assert "multipart/form-data" in response.json()["detail"]


async def test_a_file_over_the_limit_is_a_413_and_the_stream_is_cut_before_its_end(
    make_app: Callable[..., Litestar], auth: dict[str, str], services
) -> None:
    content = jsonl(4000)
    async with AsyncTestClient(make_app(max_upload_bytes=300 * 1024)) as client:
        response = await client.post("/admin/datasets/upload", files={"file": ("big.jsonl", content)}, headers=auth)

    assert response.status_code == 413
    assert response.json()["detail"] == "the file is larger than the limit of 307200 bytes (WB_MAX_UPLOAD_BYTES)"
    # The gateway cancels the call after the first chunk and never sends the trailer, without
    # which the datasets service registers nothing.
    assert all(len(upload.data) <= 256 * 1024 for upload in services.datasets.uploads)
    assert all(upload.trailer is None for upload in services.datasets.uploads)
