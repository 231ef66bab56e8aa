"""Filters over the results view and the dataset's counts: the annotations service picks the records,
the gateway builds the same record views for exactly those."""

from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from workbench.annotations.v1 import annotations_pb2 as ann

from .conftest import RECORD_WITH_SLASH, Services


async def results(client: AsyncTestClient[Litestar], auth: dict[str, str], **params: Any) -> Any:
    response = await client.get("/admin/workbench/results", params={"dataset_id": "ds-1", **params}, headers=auth)
    assert response.status_code == 200, response.text
    return response.json()


async def test_every_record_view_carries_its_disagreement(
    client: AsyncTestClient[Litestar], auth: dict[str, str]
) -> None:
    r1, r2, _ = (await results(client, auth))["records"]

    assert r2["disagreement"] == {"differs": True, "score": 1.0, "differing_paths": []}
    assert r1["disagreement"] == {"differs": False, "score": 0.0, "differing_paths": []}


async def test_a_filter_shows_only_the_records_that_pass_with_their_answers(
    client: AsyncTestClient[Litestar], auth: dict[str, str], services: Services
) -> None:
    view = await results(client, auth, filter="differences", model_id="gemma", limit=10)

    assert [r["record_id"] for r in view["records"]] == ["r2"]
    assert view["total"] == 1
    (record,) = view["records"]
    assert record["results"]["gemma"]["output_text"] == "Four."  # the same view as without a filter
    assert record["disagreement"]["differs"] is True
    query = services.annotations.queries[-1]
    assert (query.filter, query.model_id, query.limit) == (ann.RECORD_FILTER_DIFFERENCES, "gemma", 10)


async def test_needs_review_keeps_the_services_order(client: AsyncTestClient[Litestar], auth: dict[str, str]) -> None:
    view = await results(client, auth, filter="needs_review")

    assert [r["record_id"] for r in view["records"]] == [RECORD_WITH_SLASH, "r2"]  # most disagreed first
    assert [r["index"] for r in view["records"]] == [2, 1]


async def test_text_search_and_paging_go_to_the_annotations_service(
    client: AsyncTestClient[Litestar], auth: dict[str, str], services: Services
) -> None:
    view = await results(client, auth, q="R", offset=1, limit=1)

    assert [r["record_id"] for r in view["records"]] == ["r2"]
    assert (view["total"], view["offset"], view["limit"]) == (3, 1, 1)
    query = services.annotations.queries[-1]
    assert (query.filter, query.q, query.offset) == (ann.RECORD_FILTER_UNSPECIFIED, "R", 1)


async def test_a_filter_nothing_passes_shows_no_records(
    client: AsyncTestClient[Litestar], auth: dict[str, str]
) -> None:
    view = await results(client, auth, filter="fixed")

    assert (view["records"], view["total"]) == ([], 0)


async def test_an_unknown_filter_is_a_400_naming_the_allowed_ones(
    client: AsyncTestClient[Litestar], auth: dict[str, str]
) -> None:
    response = await client.get(
        "/admin/workbench/results", params={"dataset_id": "ds-1", "filter": "starred"}, headers=auth
    )

    assert response.status_code == 400
    assert "differences, golden, fixed, wrong, needs_review" in response.text


async def test_stats_count_overall_and_per_model(client: AsyncTestClient[Litestar], auth: dict[str, str]) -> None:
    response = await client.get("/admin/workbench/stats", params={"dataset_id": "ds-1"}, headers=auth)

    assert response.status_code == 200, response.text
    stats = response.json()
    assert {k: v for k, v in stats.items() if k != "by_model"} == {
        "total": 3,
        "golden": 1,
        "fixed": 0,
        "wrong": 1,
        "needs_review": 1,
        "differing": 1,
    }
    assert list(stats["by_model"]) == ["gemma", "olmo"]
    assert stats["by_model"]["olmo"]["wrong"] == 1


async def test_stats_of_an_unknown_dataset_are_a_404(client: AsyncTestClient[Litestar], auth: dict[str, str]) -> None:
    response = await client.get("/admin/workbench/stats", params={"dataset_id": "nope"}, headers=auth)

    assert response.status_code == 404
