"""Datasets: list, get one, rename, delete, and page through a dataset's records with a text search."""

from litestar import Litestar
from litestar.testing import AsyncTestClient

from .conftest import R1_METADATA, Services

DATASET_VIEW = {
    "dataset_id": "ds-1",
    "name": "candidates.jsonl",
    "format": "mixed",
    "record_count": 3,
    "sha256": "ab" * 32,
    "size_bytes": 321,
    "registered_at": "2025-10-09T08:53:20Z",
    "skipped_records": 0,
}


async def test_the_list_shows_each_dataset_with_its_id_and_upload_time(
    client: AsyncTestClient[Litestar], auth: dict[str, str]
) -> None:
    response = await client.get("/admin/datasets", headers=auth)

    assert response.status_code == 200
    assert response.json() == {"datasets": [DATASET_VIEW]}


async def test_one_dataset_by_its_id(client: AsyncTestClient[Litestar], auth: dict[str, str]) -> None:
    found = await client.get("/admin/datasets/ds-1", headers=auth)
    missing = await client.get("/admin/datasets/ds-nope", headers=auth)

    assert found.status_code == 200
    assert found.json() == {"dataset": DATASET_VIEW}
    assert missing.status_code == 404
    assert missing.json()["error"] == "NOT_FOUND" and "ds-nope" in missing.json()["detail"]


async def test_a_dataset_is_renamed(
    client: AsyncTestClient[Litestar], auth: dict[str, str], services: Services
) -> None:
    response = await client.patch("/admin/datasets/ds-1", json={"name": "Candidates, cleaned"}, headers=auth)
    empty = await client.patch("/admin/datasets/ds-1", json={"name": "  "}, headers=auth)
    unknown_field = await client.patch("/admin/datasets/ds-1", json={"name": "x", "size": 1}, headers=auth)
    missing = await client.patch("/admin/datasets/ds-nope", json={"name": "x"}, headers=auth)

    assert response.status_code == 200, response.text
    assert response.json() == {"dataset": {**DATASET_VIEW, "name": "Candidates, cleaned"}}
    assert [(r.dataset_id, r.name) for r in services.datasets.renamed] == [("ds-1", "Candidates, cleaned")]
    assert (empty.status_code, empty.json()["detail"]) == (400, "a dataset's name cannot be empty")
    assert unknown_field.status_code == 400
    assert missing.status_code == 404


async def test_a_dataset_is_deleted_once(
    client: AsyncTestClient[Litestar], auth: dict[str, str], services: Services
) -> None:
    deleted = await client.delete("/admin/datasets/ds-1", headers=auth)
    again = await client.delete("/admin/datasets/ds-1", headers=auth)
    unknown = await client.delete("/admin/datasets/ds-nope", headers=auth)

    assert deleted.status_code == 204
    assert deleted.content == b""
    assert services.datasets.deleted == ["ds-1"]
    assert again.status_code == 404
    assert unknown.status_code == 404
    assert unknown.json()["error"] == "NOT_FOUND"


async def test_records_come_with_their_input_metadata_and_sampling(
    client: AsyncTestClient[Litestar], auth: dict[str, str], services: Services
) -> None:
    response = await client.get("/admin/datasets/ds-1/records", headers=auth)

    assert response.status_code == 200, response.text
    page = response.json()
    assert (page["total"], page["offset"], page["limit"]) == (3, 0, 50)
    r1, r2, r3 = page["records"]
    assert r1 == {
        "record_id": "r1",
        "index": 0,
        "input": {"prompt": "Is the sky blue?"},
        "metadata": R1_METADATA,
        "sampling": {},
    }
    assert r2["input"] == {
        "messages": [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "<b>2+2?</b>"}]
    }
    assert (r2["metadata"], r2["sampling"]) == ({}, {"max_tokens": 32, "temperature": 0.0})
    assert (r3["record_id"], r3["metadata"]) == ("rec/3", {})
    [asked] = services.datasets.record_requests
    assert (asked.dataset_id, asked.offset, asked.limit, asked.q) == ("ds-1", 0, 50, "")


async def test_records_are_paged_and_searched(
    client: AsyncTestClient[Litestar], auth: dict[str, str], services: Services
) -> None:
    second = await client.get("/admin/datasets/ds-1/records", params={"offset": 1, "limit": 1}, headers=auth)
    found = await client.get("/admin/datasets/ds-1/records", params={"q": "cambridge"}, headers=auth)

    assert [r["record_id"] for r in second.json()["records"]] == ["r2"]
    assert (second.json()["total"], second.json()["offset"], second.json()["limit"]) == (3, 1, 1)
    assert [r["record_id"] for r in found.json()["records"]] == ["r1"]
    assert found.json()["total"] == 1
    assert services.datasets.record_requests[-1].q == "cambridge"


async def test_a_records_page_is_at_most_1000(
    client: AsyncTestClient[Litestar], auth: dict[str, str], services: Services
) -> None:
    too_big = await client.get("/admin/datasets/ds-1/records", params={"limit": 1001}, headers=auth)
    negative = await client.get("/admin/datasets/ds-1/records", params={"offset": -1}, headers=auth)
    largest = await client.get("/admin/datasets/ds-1/records", params={"limit": 1000}, headers=auth)
    unknown = await client.get("/admin/datasets/ds-nope/records", headers=auth)

    assert (too_big.status_code, negative.status_code) == (400, 400)
    assert largest.status_code == 200
    assert [r.limit for r in services.datasets.record_requests] == [1000, 50]
    assert unknown.status_code == 404
