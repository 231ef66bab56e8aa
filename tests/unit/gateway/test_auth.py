"""Every API call needs credentials; the page, its assets and /health do not. Users, roles, tokens,
login links and sessions: tests/unit/gateway/test_access.py."""

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from gateway.settings import GatewaySettings
from servicehost.settings import SettingsError


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": "Basic unit-test-token"},
        {"Authorization": "Bearer "},
    ],
    ids=["none", "wrong", "not-bearer", "empty"],
)
async def test_an_api_call_without_the_right_token_is_refused(
    client: AsyncTestClient[Litestar], headers: dict[str, str]
) -> None:
    response = await client.get("/admin/datasets", headers=headers)

    assert response.status_code == 401
    assert response.json()["error"] == "UNAUTHORIZED"
    assert "Bearer" in response.json()["detail"]
    assert response.headers["www-authenticate"] == "Bearer"


async def test_an_api_call_with_the_token_is_answered(client: AsyncTestClient[Litestar], auth: dict[str, str]) -> None:
    response = await client.get("/admin/datasets", headers=auth)

    assert response.status_code == 200
    assert [d["dataset_id"] for d in response.json()["datasets"]] == ["ds-1"]


async def test_a_token_in_the_address_is_never_read(client: AsyncTestClient[Litestar], token: str) -> None:
    # It would land in access logs and the browser's history: downloads ride on the session cookie.
    assert (await client.get("/admin/datasets", params={"token": token})).status_code == 401
    assert (await client.get("/admin/export/ds-1", params={"token": token})).status_code == 401


async def test_the_page_its_assets_and_health_need_no_token(client: AsyncTestClient[Litestar]) -> None:
    page = await client.get("/")
    asset = await client.get("/app.js")
    health = await client.get("/health")

    assert page.status_code == 200 and "<title>Workbench</title>" in page.text
    assert asset.status_code == 200 and "javascript" in asset.headers["content-type"]
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    assert health.json()["services"] == {"datasets": "ok", "inference": "ok", "annotations": "ok"}
    assert health.json()["read_models"] == {"datasets": {"parked_events": 2, "projector_lag": 3}}
    assert health.json()["storage"] == {
        "datasets": ["stream WB_EVENTS has 1 replicas where WB_STREAM_REPLICAS asks for 3"]
    }


def test_the_gateway_refuses_to_start_without_a_token() -> None:
    with pytest.raises(SettingsError, match="WB_API_TOKEN is required"):
        GatewaySettings.from_env({"WB_GATEWAY_PORT": "4080"})
    with pytest.raises(SettingsError, match=r"WB_GATEWAY_PORT: input should be a valid integer.*'eighty'"):
        GatewaySettings.from_env({"WB_API_TOKEN": "t", "WB_GATEWAY_PORT": "eighty"})


def test_settings_come_from_the_environment_and_never_show_the_token() -> None:
    settings = GatewaySettings.from_env(
        {"WB_API_TOKEN": "s3cret", "WB_DATASETS_ADDR": "datasets:50051", "WB_MAX_UPLOAD_BYTES": "1024"}
    )

    assert settings.datasets_addr == "datasets:50051"
    assert settings.max_upload_bytes == 1024
    assert settings.port == 4080
    assert "s3cret" not in repr(settings)


async def test_metrics_count_requests_by_route_template_not_by_url(
    client: AsyncTestClient[Litestar], auth: dict[str, str]
) -> None:
    await client.get("/admin/datasets", headers=auth)
    await client.post("/admin/annotations/golden/ds-1/r1", json={"model_id": "gemma"}, headers=auth)

    metrics = await client.get("/metrics")

    assert metrics.status_code == 200
    assert 'path="/admin/datasets"' in metrics.text
    assert 'path="/admin/annotations/golden/{dataset_id}/{candidate_id}"' in metrics.text
    assert "/r1" not in metrics.text  # a record id would make a series per record
