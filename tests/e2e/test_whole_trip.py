"""A dataset's whole trip through every service: upload, run two models, live results, golden, export."""

import asyncio
import json
import sys
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from devstack import Stack
from tests.conftest import REPO, jsonl

pytestmark = pytest.mark.vllm


def fifty_records() -> list[dict[str, object]]:
    records: list[dict[str, object]] = []
    for i in range(50):
        if i % 2:
            records.append({"id": f"rec-{i}", "prompt": f"Say something about the number {i}."})
        else:
            records.append({"id": f"rec-{i}", "messages": [{"role": "user", "content": f"What is {i} plus one?"}]})
    return records


async def collect_results(ws: Any, dataset_id: str, expected: int, seen: dict[tuple[str, str], dict[str, Any]]) -> None:
    while len(seen) < expected:
        frame = json.loads(await ws.recv())
        if frame["type"] == "result" and frame["result"]["dataset_id"] == dataset_id:
            result = frame["result"]
            seen[(result["model_id"], result["record_id"])] = result


async def completed_runs(api: httpx.AsyncClient, dataset_id: str, count: int) -> list[dict[str, Any]]:
    while True:
        response = await api.get("/admin/benchmarks", params={"dataset_id": dataset_id})
        runs: list[dict[str, Any]] = response.json()["runs"]
        if len(runs) == count and all(r["status"] == "completed" for r in runs):
            return runs
        await asyncio.sleep(0.2)


async def test_upload_run_two_models_watch_results_mark_golden_and_export(stack: Stack, api: httpx.AsyncClient) -> None:
    models = (await api.get("/admin/models")).json()["models"]
    model_ids = sorted(m["model_id"] for m in models)
    assert model_ids == ["tiny-a", "tiny-b"]

    bearer = {"Authorization": f"Bearer {stack.token}"}
    async with connect(f"ws://127.0.0.1:{stack.ports.gateway}/ws/workbench", additional_headers=bearer) as ws:
        upload = await api.post(
            "/admin/datasets/upload", files={"file": ("fifty.jsonl", jsonl(fifty_records()), "application/x-ndjson")}
        )
        assert upload.status_code == 201, upload.text
        dataset = upload.json()["dataset"]
        assert dataset["record_count"] == 50
        assert dataset["dataset_id"] in [d["dataset_id"] for d in (await api.get("/admin/datasets")).json()["datasets"]]

        run_request = {"dataset_id": dataset["dataset_id"], "model_ids": model_ids}
        started = await api.post("/admin/benchmarks/run", json=run_request)
        assert started.status_code == 201, started.text
        assert sorted(r["model_id"] for r in started.json()["runs"]) == model_ids

        seen: dict[tuple[str, str], dict[str, Any]] = {}
        await asyncio.wait_for(collect_results(ws, dataset["dataset_id"], 100, seen), timeout=420)

    assert {record for _, record in seen} == {f"rec-{i}" for i in range(50)}
    assert all(r["error"] == "" and r["output_tokens"] > 0 for r in seen.values())

    # The WebSocket relays results straight from the log; the read models follow a moment later.
    runs = await asyncio.wait_for(completed_runs(api, dataset["dataset_id"], 2), timeout=60)
    assert sorted((r["model_id"], r["status"], r["done"], r["total"]) for r in runs) == [
        ("tiny-a", "completed", 50, 50),
        ("tiny-b", "completed", 50, 50),
    ]
    assert all(r["tokens_per_second"] > 0 and r["engine"].startswith("vllm") for r in runs)

    view = (await api.get("/admin/workbench/results", params={"dataset_id": dataset["dataset_id"]})).json()
    assert len(view["records"]) == 50
    first = view["records"][0]
    assert first["record_id"] == "rec-0"
    assert first["input"] == {"messages": [{"role": "user", "content": "What is 0 plus one?"}]}
    assert set(first["results"]) == {"tiny-a", "tiny-b"}
    assert first["results"]["tiny-a"]["output_text"] == seen[("tiny-a", "rec-0")]["output_text"]
    # Random-weight models answer differently: the view must say so.
    assert any(record["differs"] for record in view["records"])

    golden = await api.post(f"/admin/annotations/golden/{dataset['dataset_id']}/rec-1", json={"model_id": "tiny-b"})
    assert golden.status_code == 201, golden.text

    export = await api.get(f"/admin/export/{dataset['dataset_id']}", params={"format": "jsonl"})
    assert export.status_code == 200, export.text
    lines = [json.loads(line) for line in export.text.splitlines()]
    # Each line names the run whose answer was judged, and what reproduces it.
    runs_by_model = {run["model_id"]: run for run in runs}
    judged_run = lines[0].pop("run")
    assert judged_run["run_id"] == runs_by_model["tiny-b"]["run_id"]
    assert judged_run["dataset_sha256"] == dataset["sha256"]
    assert judged_run["engine"].startswith("vllm") and judged_run["model_path"].endswith("tiny-b")
    assert lines == [
        {
            "dataset_id": dataset["dataset_id"],
            "record_id": "rec-1",
            "model_id": "tiny-b",
            "kind": "golden",
            "messages": [
                {"role": "user", "content": "Say something about the number 1."},
                {"role": "assistant", "content": seen[("tiny-b", "rec-1")]["output_text"]},
            ],
            "input": [{"role": "user", "content": "Say something about the number 1."}],
            "answer": seen[("tiny-b", "rec-1")]["output_text"],
            "fixed_text": "",
            "annotator": "admin",  # who called: the bootstrap admin (WB_ADMIN_NAME)
            "note": "",
        }
    ]


async def test_a_broken_line_is_refused_with_its_number_and_nothing_is_registered(api: httpx.AsyncClient) -> None:
    before = (await api.get("/admin/datasets")).json()["datasets"]
    body = b'{"prompt": "fine"}\n{"prompt": "also fine"}\n{"prompt": "broken"\n{"prompt": "fine again"}\n'

    response = await api.post("/admin/datasets/upload", files={"file": ("broken.jsonl", body, "application/x-ndjson")})

    assert 400 <= response.status_code < 500
    assert "line 3" in response.json()["detail"]
    assert (await api.get("/admin/datasets")).json()["datasets"] == before


async def test_every_endpoint_needs_the_token(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.url) as anonymous:
        assert (await anonymous.get("/admin/datasets")).status_code == 401
        wrong = await anonymous.get("/admin/datasets", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert (await anonymous.get("/")).status_code == 200


async def test_the_example_subscriber_prints_every_recorded_result(stack: Stack, api: httpx.AsyncClient) -> None:
    records = [{"id": "sub-1", "prompt": "one"}, {"id": "sub-2", "prompt": "two"}]
    upload = await api.post("/admin/datasets/upload", files={"file": ("sub.jsonl", jsonl(records))})
    dataset_id = upload.json()["dataset"]["dataset_id"]
    run = (await api.post("/admin/benchmarks/run", json={"dataset_id": dataset_id, "model_id": "tiny-a"})).json()
    run_id = run["runs"][0]["run_id"]
    await asyncio.wait_for(completed_runs(api, dataset_id, 1), timeout=120)

    subscriber = await asyncio.create_subprocess_exec(
        sys.executable,
        str(REPO / "examples" / "subscribe_results.py"),
        "--nats",
        stack.nats_url,
        "--from-start",
        stdout=asyncio.subprocess.PIPE,
    )
    assert subscriber.stdout is not None
    printed: list[str] = []
    try:
        while not all(any(f"{run_id} tiny-a {rid}:" in line for line in printed) for rid in ("sub-1", "sub-2")):
            printed.append((await asyncio.wait_for(subscriber.stdout.readline(), timeout=30)).decode())
    finally:
        subscriber.kill()
        await subscriber.wait()
