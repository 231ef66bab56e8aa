"""A worker killed in the middle of a run: its shards come back, and every record ends up with
exactly one result (none lost, none duplicated)."""

import asyncio
import contextlib
from typing import Any

import grpc
import httpx
import pytest

from devstack import Stack
from eventlog import JetStreamEventStore as EventLog
from tests.conftest import jsonl
from workbench.inference.v1.inference_pb2 import ResultRecorded, SamplingParams, StartRunRequest
from workbench.inference.v1.inference_pb2_grpc import InferenceServiceStub

pytestmark = [pytest.mark.vllm, pytest.mark.restarts_stack]

RECORDS = 1200
# Long answers (the tiny models rarely stop on their own), so that a run takes seconds, not a blink.
LONG = SamplingParams(temperature=0.0, top_p=1.0, max_tokens=400, seed=0)


async def start_long_run(stack: Stack, dataset_id: str) -> str:
    """Starts a run over gRPC: the HTTP API has no sampling parameters yet."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{stack.ports.inference}") as channel:
        request = StartRunRequest(dataset_id=dataset_id, model_id="tiny-a", sampling=LONG)
        reply = await InferenceServiceStub(channel).StartRun(request)
    return str(reply.run.run_id)


async def results_in_log(stack: Stack, run_id: str) -> list[ResultRecorded]:
    events = await EventLog.connect(stack.nats_url)
    try:
        return [e.event for e in await events.read(f"wb.results.{run_id}")]  # type: ignore[misc]
    finally:
        await events.close()


async def kill_worker_at_first_result(stack: Stack, run_id: str) -> int:
    """SIGKILLs the worker as soon as the run's first result is stored; returns the results stored then."""
    events = await EventLog.connect(stack.nats_url)
    try:
        async with contextlib.aclosing(events.follow(f"wb.results.{run_id}")) as results:
            async for _ in results:
                # Kill before anything else: no goodbye, the shards in flight stay un-acked.
                stack.stop(("worker",), kill=True)
                break
        return len(await events.read(f"wb.results.{run_id}"))
    finally:
        await events.close()


async def run_status(api: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    runs = (await api.get("/admin/benchmarks")).json()["runs"]
    return next(r for r in runs if r["run_id"] == run_id)


async def test_a_killed_worker_loses_and_duplicates_nothing(stack: Stack) -> None:
    headers = {"Authorization": f"Bearer {stack.token}"}
    records: list[dict[str, object]] = [{"id": f"k{i}", "prompt": f"count to {i}"} for i in range(RECORDS)]
    async with httpx.AsyncClient(base_url=stack.url, headers=headers, timeout=60) as api:
        upload = await api.post("/admin/datasets/upload", files={"file": ("kill.jsonl", jsonl(records))})
        run_id = await start_long_run(stack, upload.json()["dataset"]["dataset_id"])
        at_kill = await asyncio.wait_for(kill_worker_at_first_result(stack, run_id), timeout=240)
        assert 0 < at_kill < RECORDS, f"{at_kill} of {RECORDS} results at the kill: the test proved nothing"

        stack.start(("worker",))
        for _ in range(600):
            run = await run_status(api, run_id)
            if run["status"] in ("completed", "failed"):
                break
            await asyncio.sleep(0.5)

    assert (run["status"], run["done"], run["failed"], run["total"]) == ("completed", RECORDS, 0, RECORDS)
    record_ids = [e.record_id for e in await results_in_log(stack, run_id)]
    assert len(record_ids) == RECORDS, f"{len(record_ids) - len(set(record_ids))} duplicated results"
    assert set(record_ids) == {f"k{i}" for i in range(RECORDS)}
