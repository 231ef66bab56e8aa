"""Models, runs, annotations and the export, as the workbench page calls them."""

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from gateway.controllers.annotations import export_file_name
from workbench.annotations.v1 import annotations_pb2 as ann


async def test_models_are_listed_without_their_paths(client: AsyncTestClient[Litestar], auth: dict[str, str]) -> None:
    response = await client.get("/admin/models", headers=auth)

    assert response.status_code == 200
    gemma, olmo = response.json()["models"]
    assert gemma == {
        "model_id": "gemma",
        "display_name": "Gemma 3 4B",
        "backend": "vllm",
        "revision": "r1",
        "max_model_len": 4096,
        "default_sampling": {"temperature": 0.0, "top_p": 1.0, "max_tokens": 64, "seed": 7},
        "workers": [],
    }
    assert olmo["backend"] == "openai"
    assert olmo["workers"] == [{"worker": "gpu-1", "state": "loading", "since": "2025-10-09T08:53:25Z", "detail": ""}]


async def test_running_selected_models_starts_one_run_each(
    client: AsyncTestClient[Litestar], auth: dict[str, str], services
) -> None:
    response = await client.post(
        "/admin/benchmarks/run", json={"dataset_id": "ds-1", "model_ids": ["gemma", "olmo", "gemma"]}, headers=auth
    )

    assert response.status_code == 201
    runs = response.json()["runs"]
    assert [r["model_id"] for r in runs] == ["gemma", "olmo"]
    assert response.json()["errors"] == []
    assert {r["status"] for r in runs} == {"queued"}
    assert set(runs[0]) >= {"run_id", "total", "done", "tokens_per_second", "eta_seconds", "requested_at", "engine"}
    assert sorted(s.model_id for s in services.inference.started) == ["gemma", "olmo"]


async def test_a_single_model_id_is_accepted_and_no_model_is_a_400(
    client: AsyncTestClient[Litestar], auth: dict[str, str]
) -> None:
    one = await client.post("/admin/benchmarks/run", json={"dataset_id": "ds-1", "model_id": "olmo"}, headers=auth)
    none = await client.post("/admin/benchmarks/run", json={"dataset_id": "ds-1", "model_ids": []}, headers=auth)
    unknown = await client.post("/admin/benchmarks/run", json={"dataset_id": "ds-1", "model_id": "gpt-9"}, headers=auth)

    assert one.status_code == 201 and one.json()["runs"][0]["model_id"] == "olmo"
    assert none.status_code == 400 and "model_ids" in none.json()["detail"]
    assert unknown.status_code == 404 and "gpt-9" in unknown.json()["detail"]


async def test_one_failing_model_does_not_hide_the_runs_that_started(
    client: AsyncTestClient[Litestar], auth: dict[str, str], services
) -> None:
    response = await client.post(
        "/admin/benchmarks/run", json={"dataset_id": "ds-1", "model_ids": ["gemma", "gpt-9", "olmo"]}, headers=auth
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert [r["model_id"] for r in body["runs"]] == ["gemma", "olmo"]
    [error] = body["errors"]
    assert (error["model_id"], error["error"]) == ("gpt-9", "NOT_FOUND")
    assert "gpt-9" in error["detail"]
    assert sorted(s.model_id for s in services.inference.started) == ["gemma", "olmo"]


async def test_when_no_model_starts_the_answer_is_the_error_with_every_model_named(
    client: AsyncTestClient[Litestar], auth: dict[str, str], services
) -> None:
    response = await client.post(
        "/admin/benchmarks/run", json={"dataset_id": "ds-1", "model_ids": ["gpt-9", "explodes"]}, headers=auth
    )

    assert response.status_code == 404  # the first model's error
    body = response.json()
    assert body["error"] == "NOT_FOUND" and "gpt-9" in body["detail"]
    assert [(e["model_id"], e["error"]) for e in body["errors"]] == [("gpt-9", "NOT_FOUND"), ("explodes", "INTERNAL")]
    assert "secret" not in response.text
    assert services.inference.started == []


async def test_active_runs_and_all_runs_of_a_dataset(client: AsyncTestClient[Litestar], auth: dict[str, str]) -> None:
    active = (await client.get("/admin/benchmarks/active", params={"dataset_id": "ds-1"}, headers=auth)).json()
    every_active = (await client.get("/admin/benchmarks/active", headers=auth)).json()
    of_dataset = (await client.get("/admin/benchmarks", params={"dataset_id": "ds-1"}, headers=auth)).json()

    assert [(r["run_id"], r["status"]) for r in active["runs"]] == [("run-gemma-2", "running")]
    assert {r["run_id"] for r in every_active["runs"]} == {"run-gemma-2", "run-other"}
    assert {r["status"] for r in of_dataset["runs"]} == {"running", "completed"}
    assert len(of_dataset["runs"]) == 3


async def test_starring_an_answer_records_a_golden_annotation_under_the_callers_name(
    client: AsyncTestClient[Litestar], add_user, services
) -> None:
    ana = {"Authorization": f"Bearer {await add_user('ana', 'annotator')}"}
    response = await client.post(
        "/admin/annotations/golden/ds-1/rec%2F3",
        json={"model_id": "gemma", "note": "crisp", "expected_version": 0},
        headers=ana,
    )

    assert response.status_code == 201, response.text
    annotation = response.json()["annotation"]
    assert (annotation["record_id"], annotation["model_id"], annotation["kind"]) == ("rec/3", "gemma", "golden")
    assert annotation["version"] == 3
    sent = services.annotations.recorded[0]
    assert (sent.record_id, sent.note, sent.annotator, sent.expected_version) == ("rec/3", "crisp", "ana", 0)


async def test_fixing_and_flagging_an_answer(client: AsyncTestClient[Litestar], auth: dict[str, str], services) -> None:
    fixed = await client.post(
        "/admin/annotations/fix/ds-1/r2", json={"model_id": "olmo", "fixed_text": "4"}, headers=auth
    )
    empty_fix = await client.post(
        "/admin/annotations/fix/ds-1/r2", json={"model_id": "olmo", "fixed_text": "  "}, headers=auth
    )
    wrong = await client.post("/admin/annotations/wrong/ds-1/r2", json={"model_id": "olmo"}, headers=auth)

    assert fixed.status_code == 201 and fixed.json()["annotation"]["kind"] == "fixed"
    assert fixed.json()["annotation"]["output_text"] == "4"
    assert empty_fix.status_code == 400
    assert wrong.status_code == 201 and wrong.json()["annotation"]["kind"] == "wrong"
    assert [r.HasField("expected_version") for r in services.annotations.recorded] == [False, False]


async def test_the_export_streams_as_a_named_attachment(
    client: AsyncTestClient[Litestar], auth: dict[str, str]
) -> None:
    response = await client.get("/admin/export/ds-1", params={"format": "jsonl"}, headers=auth)

    today = datetime.now(UTC).strftime("%Y-%m-%d")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    assert response.headers["content-disposition"] == f'attachment; filename="golden_dataset_{today}.jsonl"'
    assert (
        response.content == b'{"messages": [{"role": "user", "content": "Is the sky blue?"}, {"role": "assistant"}]}\n'
    )
    unknown = await client.get("/admin/export/ds-1", params={"format": "xlsx"}, headers=auth)
    assert unknown.status_code == 400 and "openai_chat" in unknown.json()["detail"]


@pytest.mark.parametrize(
    ("export_format", "name", "media_type"),
    [
        ("json", "json", "application/json"),
        ("csv", "csv", "text/csv"),
        ("label_studio", "json", "application/json"),
        ("openai_chat", "jsonl", "application/x-ndjson"),
    ],
)
async def test_each_export_format_has_its_dated_file_name_and_content_type(
    client: AsyncTestClient[Litestar], auth: dict[str, str], export_format: str, name: str, media_type: str
) -> None:
    response = await client.get("/admin/export/ds-1", params={"format": export_format}, headers=auth)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith(media_type)
    assert response.headers["content-type"].count("charset") <= 1  # Litestar adds it to text/* types
    assert response.headers["content-disposition"] == (
        f'attachment; filename="{export_file_name(name, datetime.now(UTC))}"'
    )


def test_the_download_is_dated_in_utc() -> None:
    late_evening_in_new_york = datetime(2026, 1, 31, 22, 30, tzinfo=timezone(timedelta(hours=-5)))

    assert export_file_name("csv", late_evening_in_new_york) == "golden_dataset_2026-02-01.csv"


EXACT_IDS = ["a/", "/a", "a//b", "%2F", "with space", "naïve ✓", "rec/3", "..", "a?b#c"]


@pytest.mark.parametrize("record_id", EXACT_IDS)
async def test_an_annotation_named_in_the_body_keeps_the_record_id_byte_for_byte(
    client: AsyncTestClient[Litestar], auth: dict[str, str], services, record_id: str
) -> None:
    response = await client.post(
        "/admin/annotations",
        json={"kind": "golden", "dataset_id": "ds-1", "record_id": record_id, "model_id": "gemma"},
        headers=auth,
    )

    assert response.status_code == 201, response.text
    assert response.json()["annotation"]["record_id"] == record_id
    [sent] = services.annotations.recorded
    assert sent.record_id.encode() == record_id.encode()
    assert (sent.dataset_id, sent.model_id, sent.kind) == ("ds-1", "gemma", ann.ANNOTATION_KIND_GOLDEN)


async def test_the_body_form_records_each_kind_with_the_optional_fields(
    client: AsyncTestClient[Litestar], auth: dict[str, str], services
) -> None:
    record = {"dataset_id": "ds-1", "record_id": "r1", "model_id": "olmo"}
    fixed = await client.post(
        "/admin/annotations",
        json={**record, "kind": "fixed", "fixed_text": "Yes.", "note": "n", "expected_version": 2},
        headers=auth,
    )
    wrong = await client.post("/admin/annotations", json={**record, "kind": "wrong"}, headers=auth)
    stale = await client.post(
        "/admin/annotations", json={**record, "kind": "golden", "expected_version": 2}, headers=auth
    )

    assert fixed.status_code == 201, fixed.text
    assert fixed.json()["annotation"]["kind"] == "fixed"
    assert fixed.json()["annotation"]["output_text"] == "Yes."
    assert wrong.status_code == 201 and wrong.json()["annotation"]["kind"] == "wrong"
    assert stale.status_code == 409
    first, second = services.annotations.recorded
    assert (first.kind, first.fixed_text, first.note) == (ann.ANNOTATION_KIND_FIXED, "Yes.", "n")
    assert first.annotator == "admin"  # the bootstrap admin (WB_ADMIN_NAME) called
    assert (first.HasField("expected_version"), first.expected_version) == (True, 2)
    assert (second.kind, second.HasField("expected_version")) == (ann.ANNOTATION_KIND_WRONG, False)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"kind": "starred"}, "kind"),
        ({"kind": "fixed"}, "fixed_text"),
        ({"kind": "fixed", "fixed_text": "  "}, "fixed_text"),
        ({"kind": "golden", "fixed_text": "x"}, "fixed_text"),
        ({"kind": "golden", "record": "r1"}, "record"),
    ],
)
async def test_the_body_form_refuses_what_it_cannot_record(
    client: AsyncTestClient[Litestar], auth: dict[str, str], services, body: dict[str, str], words: str
) -> None:
    response = await client.post(
        "/admin/annotations", json={"dataset_id": "ds-1", "record_id": "r1", "model_id": "gemma", **body}, headers=auth
    )
    no_record = await client.post(
        "/admin/annotations", json={"kind": "golden", "dataset_id": "ds-1", "model_id": "gemma"}, headers=auth
    )

    assert response.status_code == 400
    assert words in response.text
    assert no_record.status_code == 400 and "record_id" in no_record.text
    assert services.annotations.recorded == []


@pytest.mark.parametrize(("sent", "recorded"), [("a%2F", "a"), ("a%2F%2Fb", "a/b"), ("%2Fa", "a")])
async def test_the_path_forms_normalise_the_record_id(
    client: AsyncTestClient[Litestar], auth: dict[str, str], services, sent: str, recorded: str
) -> None:
    # Why POST /admin/annotations exists: the router normalises the path before the handler sees it.
    response = await client.post(f"/admin/annotations/golden/ds-1/{sent}", json={"model_id": "gemma"}, headers=auth)

    assert response.status_code == 201
    assert [r.record_id for r in services.annotations.recorded] == [recorded]


async def test_a_run_may_name_its_sampling_schema_and_request_id_per_model(
    client: AsyncTestClient[Litestar], auth: dict[str, str], services
) -> None:
    body = {
        "dataset_id": "ds-1",
        "model_ids": ["gemma", "olmo"],
        "sampling": {"max_tokens": 8, "seed": 3},
        "json_schema": {"type": "object", "properties": {"verdict": {"enum": ["hire", "pass"]}}},
        "request_id": "req-9",
    }

    response = await client.post("/admin/benchmarks/run", json=body, headers=auth)

    assert response.status_code == 201, response.text
    gemma, olmo = sorted(services.inference.started, key=lambda r: r.model_id)
    # A field left out takes the model's default; each model's run has its own request id.
    assert (gemma.sampling.temperature, gemma.sampling.top_p, gemma.sampling.max_tokens, gemma.sampling.seed) == (
        0.0,
        1.0,
        8,
        3,
    )
    assert (gemma.request_id, olmo.request_id) == ("req-9:gemma", "req-9:olmo")
    assert json.loads(gemma.json_schema)["properties"]["verdict"]["enum"] == ["hire", "pass"]
    plain = await client.post(
        "/admin/benchmarks/run", json={"dataset_id": "ds-1", "model_ids": ["gemma"]}, headers=auth
    )
    assert plain.status_code == 201 and not services.inference.started[-1].HasField("sampling")


async def test_one_run_is_read_cancelled_and_its_results_paged(
    client: AsyncTestClient[Litestar], auth: dict[str, str], services
) -> None:
    one = await client.get("/admin/benchmarks/run-gemma-2", headers=auth)
    missing = await client.get("/admin/benchmarks/run-nope", headers=auth)
    cancelled = await client.post("/admin/benchmarks/run-gemma-2/cancel", headers=auth)
    ended = await client.post("/admin/benchmarks/run-olmo/cancel", headers=auth)
    page = await client.get("/admin/benchmarks/run-olmo/results", params={"offset": 1, "limit": 1}, headers=auth)
    active = await client.get("/admin/benchmarks/active", headers=auth)

    assert one.status_code == 200 and one.json()["run"]["run_id"] == "run-gemma-2"
    assert set(one.json()["run"]["reproducibility"]) >= {"dataset_sha256", "weights_hash", "chat_template_hash"}
    assert missing.status_code == 404
    assert cancelled.status_code == 200 and cancelled.json()["run"]["status"] == "cancelled"
    assert ended.status_code == 409 and "already ended" in ended.json()["detail"]
    assert services.inference.cancelled == ["run-gemma-2", "run-olmo"]
    assert page.status_code == 200 and (page.json()["total"], page.json()["offset"], page.json()["limit"]) == (3, 1, 1)
    assert [(r["run_id"], r["record_id"]) for r in page.json()["results"]] == [("run-olmo", "r2")]
    assert active.status_code == 200  # a path of its own, not a run id


async def test_a_mark_names_the_run_shown_is_cleared_and_the_history_read(
    client: AsyncTestClient[Litestar], auth: dict[str, str], services
) -> None:
    record = {"dataset_id": "ds-1", "record_id": "a/b ", "model_id": "olmo"}
    marked = await client.post("/admin/annotations", json={**record, "kind": "golden", "run_id": "run_7"}, headers=auth)
    version = marked.json()["annotation"]["version"]
    cleared = await client.post("/admin/annotations/clear", json={**record, "expected_version": version}, headers=auth)
    stale = await client.post("/admin/annotations/clear", json={**record, "expected_version": version}, headers=auth)
    history = await client.get(
        "/admin/annotations/history", params={"dataset_id": "ds-1", "record_id": "a/b "}, headers=auth
    )

    assert marked.status_code == 201, marked.text
    assert services.annotations.recorded[0].run_id == "run_7"
    assert cleared.status_code == 200 and cleared.json() == {"version": version + 1}
    [sent] = services.annotations.cleared
    assert (sent.record_id, sent.model_id, sent.expected_version) == ("a/b ", "olmo", version)
    assert stale.status_code == 409
    assert history.status_code == 200, history.text
    [entry] = history.json()["history"]
    assert (entry["model_id"], entry["change"], entry["annotator"], entry["run_id"]) == (
        "olmo",
        "golden",
        "admin",
        "run_7",
    )
