"""A service's gRPC status becomes one HTTP status, with the service's own words as the detail."""

from collections.abc import Callable

import grpc
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from devstack.natsserver import free_port
from gateway.errors import GRPC_TO_HTTP

from .conftest import Services


async def test_a_bad_line_in_an_upload_is_a_400_naming_the_line(
    client: AsyncTestClient[Litestar], auth: dict[str, str]
) -> None:
    content = b'{"prompt": "ok"}\n{"prompt": "fine"}\n{"prompt": 3}\n'

    response = await client.post("/admin/datasets/upload", files={"file": ("bad.jsonl", content)}, headers=auth)

    assert response.status_code == 400
    assert response.json() == {
        "error": "INVALID_ARGUMENT",
        "detail": 'line 3: field "prompt" must be a string',
        # From the ValidationReport in the status details: every call's error body gets one so.
        "problems": [{"line": 3, "field": "prompt", "reason": "must be a string"}],
        "more": 0,
        "line_word": "line",
    }


async def test_an_unknown_dataset_is_a_404(client: AsyncTestClient[Litestar], auth: dict[str, str]) -> None:
    response = await client.get("/admin/workbench/results", params={"dataset_id": "missing"}, headers=auth)

    assert response.status_code == 404
    assert response.json()["error"] == "NOT_FOUND"
    assert "missing" in response.json()["detail"]


async def test_a_concurrent_annotation_edit_is_a_409(client: AsyncTestClient[Litestar], auth: dict[str, str]) -> None:
    response = await client.post(
        "/admin/annotations/golden/ds-1/r1", json={"model_id": "gemma", "expected_version": 1}, headers=auth
    )

    assert response.status_code == 409
    assert response.json()["error"] == "ABORTED"
    assert response.json()["detail"] == "record 'r1' changed since version 1: reload and retry"


async def test_an_unexpected_service_error_is_a_500_that_reveals_nothing(
    client: AsyncTestClient[Litestar], auth: dict[str, str]
) -> None:
    response = await client.post(
        "/admin/benchmarks/run", json={"dataset_id": "ds-1", "model_id": "explodes"}, headers=auth
    )

    assert response.status_code == 500
    internal = {"error": "INTERNAL", "detail": "internal error; see the gateway log"}
    assert response.json() == {**internal, "errors": [{"model_id": "explodes", **internal}]}
    assert "secret" not in response.text


async def test_a_service_answer_over_the_size_limit_is_a_503_not_a_413(
    client: AsyncTestClient[Litestar], auth: dict[str, str], services: Services
) -> None:
    services.inference.oversized = True  # more than the gateway's 64 MiB gRPC message limit

    response = await client.get("/admin/workbench/results", params={"dataset_id": "ds-1"}, headers=auth)

    assert response.status_code == 503
    body = response.json()
    assert body["error"] == "RESOURCE_EXHAUSTED"
    assert "too large" in body["detail"] and "limit" in body["detail"]


async def test_an_unknown_export_is_a_404_not_a_broken_download(
    client: AsyncTestClient[Litestar], auth: dict[str, str]
) -> None:
    response = await client.get("/admin/export/nope", params={"format": "jsonl"}, headers=auth)

    assert response.status_code == 404
    assert response.json()["error"] == "NOT_FOUND"


async def test_a_malformed_body_is_a_400_with_the_same_shape(
    client: AsyncTestClient[Litestar], auth: dict[str, str]
) -> None:
    response = await client.post("/admin/benchmarks/run", json={"model_ids": ["gemma"]}, headers=auth)

    assert response.status_code == 400
    assert response.json()["error"] == "BAD_REQUEST"
    assert "dataset_id" in response.text


async def test_a_service_that_is_down_makes_health_a_503_naming_it(
    make_app: Callable[..., Litestar], auth: dict[str, str]
) -> None:
    app = make_app(annotations_addr=f"127.0.0.1:{free_port()}")
    async with AsyncTestClient(app) as client:
        response = await client.get("/health")
        listing = await client.get("/admin/datasets", headers=auth)

    assert response.status_code == 503
    assert response.json()["services"] == {"datasets": "ok", "inference": "ok", "annotations": "down"}
    assert response.json()["detail"] == "not serving: annotations"
    assert listing.status_code == 200  # the others still answer


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, 400),
        (grpc.StatusCode.NOT_FOUND, 404),
        (grpc.StatusCode.ABORTED, 409),
        (grpc.StatusCode.ALREADY_EXISTS, 409),
        (grpc.StatusCode.FAILED_PRECONDITION, 409),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 503),  # the user sent nothing too large
        (grpc.StatusCode.UNAVAILABLE, 503),
    ],
)
def test_the_status_table(code: grpc.StatusCode, status: int) -> None:
    assert GRPC_TO_HTTP[code] == status
