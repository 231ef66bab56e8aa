"""A record's id comes back byte for byte everywhere, and its metadata travels with it: upload,
run, results view, annotation, export. Ids a URL path would normalise (`a/`, `/a`, `a//b`, `%2F`)
never travel in one."""

import asyncio
import json
from typing import Any

import httpx
import pytest

from devstack import Stack
from tests.conftest import jsonl

pytestmark = [pytest.mark.vllm]

IDS = ["a/", "/a", "a//b", "%2F", "with space", "naïve ✓", "q?x=1&y#z"]


async def finished_run(api: httpx.AsyncClient, dataset_id: str) -> dict[str, Any]:
    while True:
        runs = (await api.get("/admin/benchmarks", params={"dataset_id": dataset_id})).json()["runs"]
        if runs and all(run["status"] in ("completed", "failed") for run in runs):
            return dict(runs[0])
        await asyncio.sleep(0.5)


async def test_ids_come_back_exactly_and_metadata_travels_from_upload_to_export(
    stack: Stack, api: httpx.AsyncClient
) -> None:
    records = [
        {"id": record_id, "prompt": f"Say something about record {n}.", "team": f"t{n}", "years": n}
        for n, record_id in enumerate(IDS)
    ]
    upload = await api.post("/admin/datasets/upload", files={"file": ("ids.jsonl", jsonl(records))})
    assert upload.status_code == 201, upload.text
    dataset_id = upload.json()["dataset"]["dataset_id"]

    started = await api.post("/admin/benchmarks/run", json={"dataset_id": dataset_id, "model_ids": ["tiny-a"]})
    assert started.status_code == 201, started.text
    run = await asyncio.wait_for(finished_run(api, dataset_id), timeout=300)
    assert (run["status"], run["done"]) == ("completed", len(IDS))

    view = (await api.get("/admin/workbench/results", params={"dataset_id": dataset_id})).json()
    assert [record["record_id"] for record in view["records"]] == IDS
    metadata = [{"team": f"t{n}", "years": n} for n in range(len(IDS))]
    assert [record["metadata"] for record in view["records"]] == metadata
    assert all("tiny-a" in record["results"] for record in view["records"])

    for record_id in IDS:
        marked = await api.post(
            "/admin/annotations",
            json={"kind": "golden", "dataset_id": dataset_id, "record_id": record_id, "model_id": "tiny-a"},
        )
        assert marked.status_code == 201, marked.text
        assert marked.json()["annotation"]["record_id"] == record_id

    export = await api.get(f"/admin/export/{dataset_id}", params={"format": "jsonl"})
    assert export.status_code == 200, export.text
    lines = [json.loads(line) for line in export.text.splitlines()]
    assert [line["record_id"] for line in lines] == IDS
    assert [line["metadata"] for line in lines] == metadata
