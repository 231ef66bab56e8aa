"""What is checked after a fault run, each finding counted in the outcome (see scenario.py)."""

import asyncio
import time
from collections import Counter
from collections.abc import Collection
from typing import Any

import httpx

from devstack import Stack
from eventlog import JetStreamEventStore
from tests.faults.observers import Mark, SocketWatch, close_quietly
from tests.faults.outcome import FaultOutcome
from tests.faults.rebuild import rebuild_mismatches

RECOVER_WITHIN_S = 60.0  # after a restart, the API must answer again within this
ASK_TIMEOUT_S = 10.0


async def get_json(
    api: httpx.AsyncClient,
    path: str,
    outcome: FaultOutcome,
    params: dict[str, str] | None = None,
    within_s: float = RECOVER_WITHIN_S,
) -> Any:
    """A GET's JSON answer, asked again while the gateway or a service behind it is away (a restarted
    process may take a moment to be found); raises when it is still away after within_s. How long it
    was away goes into the outcome's timeline."""
    deadline = time.monotonic() + within_s
    first_refusal = ""
    while True:
        try:
            reply = await api.get(path, params=params, timeout=ASK_TIMEOUT_S)
        except httpx.HTTPError as error:
            why = f"{type(error).__name__} {error}"
        else:
            if reply.status_code < 500:
                reply.raise_for_status()
                if first_refusal:
                    outcome.note(f"GET {path} answered again; it first answered {first_refusal}")
                return reply.json()
            why = f"{reply.status_code} {reply.text[:300]}"
        first_refusal = first_refusal or why
        if time.monotonic() > deadline:
            raise RuntimeError(f"GET {path} did not answer within {within_s:.0f} s: {why}")
        await asyncio.sleep(0.5)


async def check_everything(
    stack: Stack,
    api: httpx.AsyncClient,
    dataset_id: str,
    wanted: Collection[tuple[str, str]],
    marks: list[Mark],
    socket: SocketWatch,
    outcome: FaultOutcome,
) -> None:
    """Results (wanted: every (record, model) pair), acknowledged marks, read models, live frames."""
    await check_results(stack, api, dataset_id, wanted, outcome)
    await check_marks(api, dataset_id, marks, outcome)
    outcome.note("results and marks checked")
    outcome.rebuild_mismatches = await rebuild_mismatches(stack)
    for mismatch in outcome.rebuild_mismatches:
        outcome.problem(f"the rebuild differs from the live read model: {mismatch}")
    outcome.note("read models rebuilt and compared")
    missed, twice = await socket.compare_with_log(stack.nats_url)
    outcome.frames_missed, outcome.frames_twice = len(missed), len(twice)
    if missed or twice:
        outcome.problem(f"socket: stored-event frames missed {missed[:10]}, twice {twice[:10]}")
    outcome.note(f"socket checked: {len(socket.sequences)} frames, {socket.reloads} told to reload")


async def check_results(
    stack: Stack, api: httpx.AsyncClient, dataset_id: str, wanted: Collection[tuple[str, str]], outcome: FaultOutcome
) -> None:
    """Over every run of the dataset: the (record, model) pairs without a result in the log or in the
    results view (lost), the results beyond one per pair in the log (duplicated), the failed ones."""
    runs = (await get_json(api, "/admin/benchmarks", outcome, {"dataset_id": dataset_id}))["runs"]
    for run in runs:
        if run["status"] != "completed" or run["done"] != run["total"]:
            outcome.problem(
                f"run {run['run_id']} of {run['model_id']}: {run['status']}, done {run['done']} of {run['total']}"
            )
    if len({run["model_id"] for run in runs}) < len(runs):
        outcome.problem(f"more than one run of a model: {[(run['model_id'], run['run_id']) for run in runs]}")
    events = await JetStreamEventStore.connect(stack.nats_url)
    try:
        stored = await events.read([f"wb.results.{run['run_id']}" for run in runs])
    finally:
        await close_quietly(events)
    results: list[Any] = [item.event for item in stored]
    in_log = Counter((result.record_id, result.model_id) for result in results)
    view = (await get_json(api, "/admin/workbench/results", outcome, {"dataset_id": dataset_id}))["records"]
    in_view = {(row["record_id"], model_id) for row in view for model_id in row["results"]}
    lost = sorted(pair for pair in wanted if not in_log[pair] or pair not in in_view)
    twice = sorted(pair for pair, count in in_log.items() if count > 1)
    failed = [(result.record_id, result.model_id, result.error) for result in results if result.error]
    outcome.results_lost = len(lost)
    outcome.results_duplicated = sum(in_log[pair] - 1 for pair in twice)
    outcome.results_failed = len(failed)
    if lost:
        outcome.problem(f"results lost (record, model): {lost[:10]}")
    if twice:
        outcome.problem(f"results duplicated (record, model): {twice[:10]}")
    if failed:
        outcome.problem(f"failed results (record, model, error): {failed[:5]}")


async def check_marks(api: httpx.AsyncClient, dataset_id: str, acknowledged: list[Mark], outcome: FaultOutcome) -> None:
    """Every mark answered 2xx must be in the results view as it was made."""
    view = (await get_json(api, "/admin/workbench/results", outcome, {"dataset_id": dataset_id}))["records"]
    shown = {(row["record_id"], model_id): mark for row in view for model_id, mark in row["annotations"].items()}
    lost = [
        mark
        for mark in acknowledged
        if (found := shown.get((mark.record_id, mark.model_id))) is None
        or (found["kind"], found["note"]) != (mark.kind, mark.note)
    ]
    outcome.annotations_acknowledged = len(acknowledged)
    outcome.annotations_lost = len(lost)
    if lost:
        outcome.problem(f"acknowledged annotations missing: {lost[:10]}")
