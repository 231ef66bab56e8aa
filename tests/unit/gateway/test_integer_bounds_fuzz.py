"""Integers past what the services' contract carries (int64; int32 for max_tokens) are a 400 that names
the field. Found by tests/fuzz (schemathesis): each of these was a 500, protobuf refusing the value
("Value out of range") while the gateway built its request to a service."""

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

BEYOND_INT64 = 2**63
BEYOND_INT32 = 2**31


@pytest.mark.parametrize(
    "path",
    [
        f"/admin/datasets/ds-1/records?offset={BEYOND_INT64}",
        f"/admin/benchmarks/run-olmo/results?offset={BEYOND_INT64}",
        f"/admin/workbench/results?dataset_id=ds-1&offset={BEYOND_INT64}",
    ],
)
async def test_an_offset_beyond_int64_is_refused(
    client: AsyncTestClient[Litestar], auth: dict[str, str], path: str
) -> None:
    response = await client.get(path, headers=auth)

    assert response.status_code == 400, response.text
    assert "offset" in response.text


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (
            "/admin/benchmarks/run",
            {"dataset_id": "ds-1", "model_ids": ["gemma"], "sampling": {"max_tokens": BEYOND_INT32}},
            "max_tokens",
        ),
        (
            "/admin/benchmarks/run",
            {"dataset_id": "ds-1", "model_ids": ["gemma"], "sampling": {"seed": -BEYOND_INT64 - 1}},
            "seed",
        ),
        (
            "/admin/annotations",
            {
                "kind": "golden",
                "dataset_id": "ds-1",
                "record_id": "r1",
                "model_id": "gemma",
                "expected_version": BEYOND_INT64,
            },
            "expected_version",
        ),
        (
            "/admin/annotations/clear",
            {"dataset_id": "ds-1", "record_id": "r1", "model_id": "gemma", "expected_version": BEYOND_INT64},
            "expected_version",
        ),
        (
            "/admin/annotations/golden/ds-1/r1",
            {"model_id": "gemma", "expected_version": BEYOND_INT64},
            "expected_version",
        ),
        ("/admin/label-studio/ds-1/link", {"project_id": BEYOND_INT64}, "project_id"),
    ],
)
async def test_a_body_integer_beyond_the_contract_is_refused_naming_its_field(
    client: AsyncTestClient[Litestar], auth: dict[str, str], path: str, body: dict[str, object], field: str
) -> None:
    response = await client.post(path, json=body, headers=auth)

    assert response.status_code == 400, response.text
    assert field in response.text


async def test_the_largest_int64_offset_still_reaches_the_service(
    client: AsyncTestClient[Litestar], auth: dict[str, str]
) -> None:
    response = await client.get(f"/admin/benchmarks/run-olmo/results?offset={BEYOND_INT64 - 1}", headers=auth)

    assert response.status_code == 200, response.text
    assert response.json()["results"] == []
