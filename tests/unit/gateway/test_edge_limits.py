"""Text safety, size limits and security headers at the gateway, each case as the issue found it."""

import json

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from gateway.headers import CONTENT_SECURITY_POLICY

MARK = {"kind": "golden", "dataset_id": "ds-1", "record_id": "r1", "model_id": "gemma"}


async def test_a_note_holding_nul_is_refused_naming_the_field(
    client: AsyncTestClient[Litestar], auth: dict[str, str], services
) -> None:
    # Was 201: stored in the log, then the Postgres projector died on it at every restart.
    response = await client.post("/admin/annotations", json={**MARK, "note": "ok\u0000"}, headers=auth)

    assert response.status_code == 400
    assert response.json()["detail"] == "note holds the control character U+0000 at position 2"
    assert services.annotations.recorded == []


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("note", "a\x1bb", "holds the control character U+001B at position 1"),
        ("note", "\ud800", "holds a lone surrogate U+D800 at position 0"),
        ("model_id", "gemma\n", "holds the control character U+000A at position 5"),
        ("record_id", "r" * 5000, "is 5,000 characters long; the limit is 256"),
        ("fixed_text", "x" * 100_001, "is 100,001 characters long; the limit is 100,000"),
    ],
    ids=["escape-in-note", "surrogate", "newline-in-id", "long-id", "long-text"],
)
async def test_unsafe_or_oversized_text_is_refused_naming_the_field(
    client: AsyncTestClient[Litestar], auth: dict[str, str], field: str, value: str, reason: str
) -> None:
    body = {**MARK, "kind": "fixed", "fixed_text": "Yes.", field: value}
    # json.dumps escapes a lone surrogate as \\ud800, as a hostile client would send it.
    headers = {**auth, "Content-Type": "application/json"}
    response = await client.post("/admin/annotations", content=json.dumps(body), headers=headers)

    assert response.status_code == 400, response.text
    assert response.json()["detail"] == f"{field} {reason}"


async def test_tabs_and_newlines_are_fine_in_free_text(
    client: AsyncTestClient[Litestar], auth: dict[str, str], services
) -> None:
    body = {**MARK, "kind": "fixed", "fixed_text": "line 1\n\tline 2\r\n", "note": "see\tabove"}
    response = await client.post("/admin/annotations", json=body, headers=auth)

    assert response.status_code == 201, response.text
    assert services.annotations.recorded[0].fixed_text == "line 1\n\tline 2\r\n"


async def test_a_dataset_id_with_a_trailing_newline_in_the_path_is_a_400(
    client: AsyncTestClient[Litestar], auth: dict[str, str]
) -> None:
    # Was a 500.
    response = await client.post("/admin/annotations/golden/ds-1%0A/r1", json={"model_id": "gemma"}, headers=auth)

    assert response.status_code == 400
    assert response.json()["detail"] == "path dataset_id holds the control character U+000A at position 4"


async def test_a_nested_string_and_a_query_parameter_are_checked_too(
    client: AsyncTestClient[Litestar], auth: dict[str, str]
) -> None:
    run = {"dataset_id": "ds-1", "model_ids": ["gemma"], "json_schema": {"title": "x\u0000"}}
    nested = await client.post("/admin/benchmarks/run", json=run, headers=auth)
    query = await client.get("/admin/workbench/results", params={"dataset_id": "ds-1", "q": "a\u0007"}, headers=auth)
    renamed = await client.patch("/admin/datasets/ds-1", json={"name": "two\nlines"}, headers=auth)

    assert nested.status_code == 400 and nested.json()["detail"].startswith("json_schema.title holds")
    assert query.status_code == 400 and query.json()["detail"].startswith("query q holds")
    assert renamed.status_code == 400 and renamed.json()["detail"].startswith("name holds")


async def test_a_fixed_text_of_1_2_mb_is_a_413_not_a_500(
    client: AsyncTestClient[Litestar], auth: dict[str, str]
) -> None:
    body = {**MARK, "kind": "fixed", "fixed_text": "x" * 1_200_000}
    response = await client.post("/admin/annotations", json=body, headers=auth)

    assert response.status_code == 413


async def test_the_json_body_limit_is_a_setting(make_app, auth: dict[str, str]) -> None:
    async with AsyncTestClient(make_app(max_json_bytes=200)) as client:
        small = await client.post("/admin/annotations", json=MARK, headers=auth)
        large = await client.post("/admin/annotations", json={**MARK, "note": "n" * 300}, headers=auth)

    assert small.status_code == 201
    assert large.status_code == 413


@pytest.mark.parametrize("path", ["/", "/app.js", "/admin/datasets", "/admin/datasets/nope", "/health"])
async def test_every_response_carries_the_security_headers(
    client: AsyncTestClient[Litestar], auth: dict[str, str], path: str
) -> None:
    response = await client.get(path, headers=auth)

    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY and "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
