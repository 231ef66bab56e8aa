"""The results view joins records, every model's latest answer and the annotations, and flags disagreement."""

from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from gateway.views import record_metadata
from workbench.datasets.v1 import datasets_pb2 as ds

from .conftest import R1_METADATA, Services


async def results(client: AsyncTestClient[Litestar], auth: dict[str, str], **params: Any) -> Any:
    response = await client.get("/admin/workbench/results", params={"dataset_id": "ds-1", **params}, headers=auth)
    assert response.status_code == 200, response.text
    return response.json()


async def test_each_record_shows_every_model_side_by_side(
    client: AsyncTestClient[Litestar], auth: dict[str, str]
) -> None:
    view = await results(client, auth)

    assert view["dataset"]["dataset_id"] == "ds-1"
    assert view["dataset"]["format"] == "mixed"
    assert view["dataset"]["registered_at"].startswith("2025-10-09T")
    assert view["models"] == ["gemma", "olmo"]  # in the order of their first run
    assert [r["record_id"] for r in view["records"]] == ["r1", "r2", "rec/3"]  # joined across record batches
    assert view["total"] == 3
    first = view["records"][0]
    assert first["input"] == {"prompt": "Is the sky blue?"}
    assert first["results"]["gemma"] == {
        "run_id": "run-gemma-1",
        "output_text": "Yes.",
        "finish_reason": "stop",
        "prompt_tokens": 5,
        "output_tokens": 2,
        "latency_ms": 12.5,
        "error": "",
    }
    assert view["records"][1]["input"] == {
        "messages": [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "<b>2+2?</b>"}]
    }


async def test_a_rerun_replaces_the_older_answer_of_the_same_model(
    client: AsyncTestClient[Litestar], auth: dict[str, str]
) -> None:
    r2 = (await results(client, auth))["records"][1]

    assert r2["results"]["gemma"]["run_id"] == "run-gemma-2"
    assert r2["results"]["gemma"]["output_text"] == "Four."


async def test_differs_flags_real_disagreement_only(client: AsyncTestClient[Litestar], auth: dict[str, str]) -> None:
    r1, r2, r3 = (await results(client, auth))["records"]

    assert r1["differs"] is False  # "Yes." and "  Yes.\n" differ only in whitespace
    assert r2["differs"] is True  # "Four." against "<script>…"
    assert r3["differs"] is False  # one model failed: nothing to compare
    assert r3["results"]["olmo"]["error"] == "engine crashed"


async def test_annotations_are_grouped_by_model_with_the_record_version(
    client: AsyncTestClient[Litestar], auth: dict[str, str]
) -> None:
    r1, r2, _ = (await results(client, auth))["records"]

    assert r1["annotations"]["gemma"]["kind"] == "golden"
    assert r1["annotations"]["gemma"]["annotator"] == "ana"
    assert r1["annotations"]["olmo"]["kind"] == "wrong"
    assert r1["annotations"]["olmo"]["note"] == "hedges"
    assert r1["annotation_version"] == 2
    assert r2["annotations"] == {}
    assert r2["annotation_version"] == 0


async def test_records_can_be_paged(client: AsyncTestClient[Litestar], auth: dict[str, str]) -> None:
    page = await results(client, auth, offset=1, limit=1)

    assert [r["record_id"] for r in page["records"]] == ["r2"]
    assert (page["offset"], page["limit"], page["total"]) == (1, 1, 3)
    too_big = await client.get("/admin/workbench/results", params={"dataset_id": "ds-1", "limit": 1001}, headers=auth)
    assert too_big.status_code == 400


async def test_a_page_asks_only_for_the_results_of_its_own_records(
    client: AsyncTestClient[Litestar], auth: dict[str, str], services: Services
) -> None:
    page = await results(client, auth, offset=1, limit=2)

    assert [r["record_id"] for r in page["records"]] == ["r2", "rec/3"]
    assert page["records"][0]["results"]["gemma"]["output_text"] == "Four."
    assert page["records"][1]["results"]["olmo"]["error"] == "engine crashed"
    [asked] = services.inference.result_requests
    assert (asked.dataset_id, list(asked.record_ids)) == ("ds-1", ["r2", "rec/3"])
    [asked_annotations] = services.annotations.list_requests
    assert list(asked_annotations.record_ids) == ["r2", "rec/3"]


async def test_without_a_limit_every_result_is_asked_for(
    client: AsyncTestClient[Litestar], auth: dict[str, str], services: Services
) -> None:
    await results(client, auth)

    [asked] = services.inference.result_requests
    assert list(asked.record_ids) == []
    [asked_annotations] = services.annotations.list_requests
    assert list(asked_annotations.record_ids) == []


async def test_a_page_past_the_end_asks_for_no_results_at_all(
    client: AsyncTestClient[Litestar], auth: dict[str, str], services: Services
) -> None:
    page = await results(client, auth, offset=3, limit=50)

    assert page["records"] == []
    assert services.inference.result_requests == []  # empty record ids would mean "every record"
    assert services.annotations.list_requests == []


async def test_each_record_brings_its_metadata(client: AsyncTestClient[Litestar], auth: dict[str, str]) -> None:
    r1, r2, r3 = (await results(client, auth))["records"]

    assert r1["metadata"] == R1_METADATA  # nested values and text that looks like HTML come back as they are
    assert r2["metadata"] == {}  # "{}": the record has no other fields
    assert r3["metadata"] == {}  # unset
    paged = await results(client, auth, offset=0, limit=1)
    assert paged["records"][0]["metadata"] == R1_METADATA


def test_metadata_that_is_not_a_json_object_is_left_out_not_a_failed_page() -> None:
    assert record_metadata(ds.Record(metadata_json='{"a": [1, null]}')) == {"a": [1, None]}
    assert record_metadata(ds.Record(metadata_json="[1, 2]")) == {}
    assert record_metadata(ds.Record(metadata_json="{not json")) == {}
