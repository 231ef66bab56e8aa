"""A worker killed in the middle of a run: its shards come back, and every record ends up with
exactly one result (none lost, none duplicated)."""

import asyncio
import json
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from devstack import Stack
from eventlog import EventLog
from tests.conftest import jsonl
from workbench.inference.v1.inference_pb2 import ResultRecorded

pytestmark = [pytest.mark.vllm, pytest.mark.restarts_stack]

RECORDS = 1500


async def first_results(ws: Any, dataset_id: str) -> int:
    """Waits for the run's first results on the WebSocket; returns how many came in that frame burst."""
    seen = 0
    while seen < 5:
        frame = json.loads(await ws.recv())
        if frame["type"] == "result" and frame["result"]["dataset_id"] == dataset_id:
            seen += 1
    return seen


async def run_status(api: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    runs = (await api.get("/admin/benchmarks")).json()["runs"]
    return next(r for r in runs if r["run_id"] == run_id)


async def test_a_killed_worker_loses_and_duplicates_nothing(stack: Stack) -> None:
    headers = {"Authorization": f"Bearer {stack.token}"}
    records = [{"id": f"k{i}", "prompt": f"count to {i}"} for i in range(RECORDS)]
    async with httpx.AsyncClient(base_url=stack.url, headers=headers, timeout=60) as api:
        upload = await api.post("/admin/datasets/upload", files={"file": ("kill.jsonl", jsonl(records))})
        dataset_id = upload.json()["dataset"]["dataset_id"]

        async with connect(f"ws://127.0.0.1:{stack.ports.gateway}/ws/workbench?token={stack.token}") as ws:
            started = await api.post("/admin/benchmarks/run", json={"dataset_id": dataset_id, "model_id": "tiny-a"})
            run_id = started.json()["runs"][0]["run_id"]
            await asyncio.wait_for(first_results(ws, dataset_id), timeout=240)

        stack.stop(("worker",), kill=True)  # SIGKILL: no goodbye, shards in flight stay un-acked
        at_kill = await run_status(api, run_id)
        assert at_kill["status"] != "completed", "the run finished before the kill: the test proved nothing"

        stack.start(("worker",))
        for _ in range(600):
            run = await run_status(api, run_id)
            if run["status"] in ("completed", "failed"):
                break
            await asyncio.sleep(0.5)

    assert (run["status"], run["done"], run["failed"], run["total"]) == ("completed", RECORDS, 0, RECORDS)
    events = await EventLog.connect(stack.nats_url)
    try:
        stored = [e.event for e in await events.read(f"wb.results.{run_id}")]
    finally:
        await events.close()
    record_ids = [e.record_id for e in stored if isinstance(e, ResultRecorded)]
    assert len(record_ids) == RECORDS, f"{len(record_ids) - len(set(record_ids))} duplicated results"
    assert set(record_ids) == {f"k{i}" for i in range(RECORDS)}
