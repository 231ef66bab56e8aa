"""Read models are disposable: delete every database, start again, and the API reads back the same.

This module runs after the others (it restarts the whole stack).
"""

import httpx
import pytest

from devstack import Stack
from devstack.stack import SERVICES
from tests.conftest import jsonl

pytestmark = [pytest.mark.vllm, pytest.mark.restarts_stack]


async def snapshot(api: httpx.AsyncClient) -> dict[str, object]:
    datasets = (await api.get("/admin/datasets")).json()["datasets"]
    views = {}
    for dataset in datasets:
        view = (await api.get("/admin/workbench/results", params={"dataset_id": dataset["dataset_id"]})).json()
        runs = (await api.get("/admin/benchmarks", params={"dataset_id": dataset["dataset_id"]})).json()["runs"]
        stats = (await api.get("/admin/workbench/stats", params={"dataset_id": dataset["dataset_id"]})).json()
        views[dataset["dataset_id"]] = {"records": view["records"], "runs": runs, "stats": stats}
    return {"datasets": datasets, "views": views}


async def test_deleting_every_read_model_and_restarting_reads_back_the_same(stack: Stack) -> None:
    headers = {"Authorization": f"Bearer {stack.token}"}
    async with httpx.AsyncClient(base_url=stack.url, headers=headers, timeout=60) as api:
        # Make sure there is something of every kind, even when this test runs alone.
        if not (await api.get("/admin/datasets")).json()["datasets"]:
            upload = await api.post("/admin/datasets/upload", files={"file": ("one.jsonl", jsonl([{"prompt": "hi"}]))})
            assert upload.status_code == 201, upload.text
        before = await snapshot(api)
    assert before["datasets"]

    stack.stop()
    for service in SERVICES:
        stack.db_path(service).unlink()
    stack.start(timeout=180)

    async with httpx.AsyncClient(base_url=stack.url, headers=headers, timeout=60) as api:
        after = await snapshot(api)
    assert after == before
