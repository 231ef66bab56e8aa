"""The Label Studio routes: the link (and whether a server is configured), link, push and pull, each one
call of the annotations service."""

from litestar import Litestar
from litestar.testing import AsyncTestClient

from .conftest import Services


async def test_the_link_shows_the_project_and_whether_label_studio_is_configured(
    client: AsyncTestClient[Litestar], auth: dict[str, str]
) -> None:
    linked = await client.get("/admin/label-studio/ds-1", headers=auth)
    unlinked = await client.get("/admin/label-studio/ds-2", headers=auth)

    assert linked.status_code == 200, linked.text
    assert linked.json() == {
        "configured": True,
        "link": {
            "dataset_id": "ds-1",
            "project_id": 7,
            "project_url": "http://ls/projects/7/data",
            "pushed_tasks": 3,
            "linked_at": "2025-10-09T08:53:25Z",
        },
    }
    assert unlinked.json() == {"configured": True, "link": None}


async def test_linking_creates_a_project_or_takes_one(
    client: AsyncTestClient[Litestar], auth: dict[str, str], services: Services
) -> None:
    created = await client.post("/admin/label-studio/ds-2/link", json={"title": "Capitals"}, headers=auth)
    taken = await client.post("/admin/label-studio/ds-2/link", json={"project_id": 12}, headers=auth)
    bare = await client.post("/admin/label-studio/ds-2/link", headers=auth)

    assert [r.status_code for r in (created, taken, bare)] == [200, 200, 200]
    assert (created.json()["project_id"], taken.json()["project_id"]) == (8, 12)
    assert [(r.dataset_id, r.project_id, r.title) for r in services.annotations.ls_links] == [
        ("ds-2", 0, "Capitals"),
        ("ds-2", 12, ""),
        ("ds-2", 0, ""),
    ]
    refused = await client.post("/admin/label-studio/ds-2/link", json={"project": 1}, headers=auth)
    assert refused.status_code == 400


async def test_push_and_pull_answer_their_counts_and_errors_map_to_http(
    client: AsyncTestClient[Litestar], auth: dict[str, str]
) -> None:
    pushed = await client.post("/admin/label-studio/ds-1/push", headers=auth)
    pulled = await client.post("/admin/label-studio/ds-1/pull", headers=auth)
    not_linked = await client.post("/admin/label-studio/ds-2/push", headers=auth)

    assert (pushed.status_code, pushed.json()) == (200, {"pushed": 2, "skipped": 1})
    assert (pulled.status_code, pulled.json()) == (200, {"recorded": 4, "unchanged": 1})
    assert not_linked.status_code == 409
    assert "not linked" in not_linked.json()["detail"]


async def test_the_routes_need_the_token(client: AsyncTestClient[Litestar]) -> None:
    assert (await client.get("/admin/label-studio/ds-1")).status_code == 401
