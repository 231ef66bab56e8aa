"""Faults on the loopback cluster (issue 11, part 3): three nats-servers in one JetStream cluster
(streams with 3 replicas), two inference workers for tiny-a and one for tiny-b.

During a two-model run, kill -9 of the nats-server leading the event stream (asked of the cluster),
then kill -9 of the second tiny-a worker, which is not started again: its shards come back after
AckWait to the other one. The killed server is started again meanwhile. Then the fault suite's own
checks (checks.py): one result per record and model, every acknowledged mark in the results view,
every read model rebuilt equal, every live frame once; and the server that was killed holds the
same event stream as the two others (it rejoined and caught up).

The points are drawn from WB_FAULT_SEED (random when unset), as in test_faults.py.
"""

import asyncio
import os
import random
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack import Stack, StackPorts
from devstack.cluster import NatsCluster, stream_leader
from eventlog import DEFAULT_STREAM
from tests.conftest import REPO
from tests.faults.checks import RECOVER_WITHIN_S, check_everything
from tests.faults.observers import Annotator, ResultWatch, SocketWatch
from tests.faults.outcome import FaultOutcome
from tests.faults.scenario import (
    FAULT_STACK_ENV,
    MARKS_AFTER,
    MODELS,
    REQUEST_TIMEOUT_S,
    RUN_TIMEOUT_S,
    background,
    start_runs,
    upload,
    wait_for_runs,
)

pytestmark = [pytest.mark.vllm]

SEED = os.environ.get("WB_FAULT_SEED") or secrets.token_hex(4)
RECORDS = 200
SHARD_SIZE = 25  # eight shards per run: more than the two tiny-a workers hold at once (2 each)
LONGEST = 120  # max_tokens of the longest answer (the shortest: scenario.SHORTEST)
CAUGHT_UP_WITHIN_S = 60.0
# The second worker serves tiny-a only: two workers for one model, three engines on a small machine.
EXTRA_WORKERS = {"worker-2": {"WB_WORKER_MODELS": MODELS[0]}}
STREAMS = (DEFAULT_STREAM, "WB_WORK", "OBJ_wb-datasets")


@pytest.fixture(scope="module")
def cluster_stack(tmp_path_factory: pytest.TempPathFactory, demo_models_file: Path) -> Iterator[Stack]:
    var = tmp_path_factory.mktemp("cluster-var")
    stack = Stack(
        REPO,
        var,
        StackPorts.free(),
        models_file=demo_models_file,
        cluster=NatsCluster(var / "nats-cluster"),
        extra_workers=EXTRA_WORKERS,
        extra_env={**FAULT_STACK_ENV, "WB_SHARD_SIZE": str(SHARD_SIZE)},
    )
    try:
        stack.start(timeout=300)
        yield stack
    finally:
        stack.stop()


async def test_a_killed_stream_leader_and_a_killed_worker_lose_nothing(cluster_stack: Stack) -> None:
    outcome = await run_cluster_faults(cluster_stack, SEED)
    print(outcome.report(timeline=True))
    assert outcome.clean, outcome.report()


async def run_cluster_faults(stack: Stack, seed: str) -> FaultOutcome:
    rng = random.Random(f"{seed}/cluster")
    outcome = FaultOutcome("cluster", seed)
    headers = {"Authorization": f"Bearer {stack.token}"}
    async with httpx.AsyncClient(base_url=stack.url, headers=headers, timeout=REQUEST_TIMEOUT_S) as api:
        dataset_id = await upload(api, f"cluster {seed}", RECORDS, LONGEST, "cluster.jsonl")
        socket = SocketWatch(stack.ports.gateway, stack.token)
        async with background(socket.run()):
            await socket.following()
            marks = await run_with_faults(stack, api, dataset_id, rng, outcome)
            wanted = [(f"r{i}", model_id) for i in range(RECORDS) for model_id in MODELS]
            await check_everything(stack, api, dataset_id, wanted, marks, socket, outcome)
    await check_caught_up(stack, outcome)
    outcome.seconds = time.monotonic() - outcome.began
    return outcome


async def run_with_faults(
    stack: Stack, api: httpx.AsyncClient, dataset_id: str, rng: random.Random, outcome: FaultOutcome
) -> list[Any]:
    assert stack.cluster is not None
    runs = await start_runs(api, dataset_id, f"cluster-{outcome.seed}", outcome)
    outcome.note(f"runs {runs}")
    watch = ResultWatch(stack.nats_url, list(runs.values()))
    annotator = Annotator(api, dataset_id, watch)
    total = RECORDS * len(MODELS)
    async with background(watch.run(), annotator.run()):
        k = rng.randint(1, total // 4)
        # worker-2 dies at the first moment after this point when it holds a shard not finished yet,
        # so that shard comes back to the other worker.
        k_worker = rng.randint(1, RECORDS - 4 * SHARD_SIZE)
        outcome.point = (
            f"kill -9 of the event stream's leader after {k} of {total} results, "
            f"of worker-2 after {k_worker} of {RECORDS} {MODELS[0]} results, holding a shard"
        )
        await asyncio.wait_for(watch.stored(k), RUN_TIMEOUT_S)
        leader = await stream_leader(stack.nats_url, DEFAULT_STREAM)
        outcome.note(
            f"{len(watch.seen)} results stored: kill -9 of nats-server {leader}, the leader of {DEFAULT_STREAM}"
        )
        await asyncio.to_thread(stack.kill_nats_server, leader)
        await asyncio.wait_for(results_of(watch, MODELS[0], k_worker), RUN_TIMEOUT_S)
        held = await asyncio.wait_for(unfinished_shard(stack, runs, watch), RUN_TIMEOUT_S)
        await asyncio.to_thread(stack.stop, ("worker-2",), True)
        new_leader = await stream_leader(stack.nats_url, DEFAULT_STREAM)
        outcome.note(
            f"{len(watch.seen)} results stored, {new_leader} leads; kill -9 of worker-2 (not restarted), "
            f"holding {MODELS[0]}'s records {held or 'none (its run was done)'}"
        )
        if new_leader == leader:
            outcome.problem(f"the killed {leader} still leads {DEFAULT_STREAM}")
        await asyncio.to_thread(stack.start_nats_server, leader)
        outcome.note(f"nats-server {leader} started again; {len(watch.seen)} results stored")
        before = len(annotator.acknowledged)
        await wait_for_runs(api, runs, outcome)
        outcome.note(f"runs ended; {annotator.made} marks made, {len(annotator.acknowledged)} acknowledged")
        again = [line for line in shards(stack, "worker", runs) if "(delivery 1)" not in line]
        outcome.note(f"shards of {MODELS[0]}'s run the first worker took again: {len(again)}")
        try:
            await asyncio.wait_for(annotator.acknowledged_count(before + MARKS_AFTER), RECOVER_WITHIN_S)
        except TimeoutError:
            outcome.problem(f"fewer than {MARKS_AFTER} marks acknowledged after the faults in {RECOVER_WITHIN_S:.0f} s")
    outcome.marks_made = annotator.made
    return annotator.acknowledged


async def results_of(watch: ResultWatch, model_id: str, count: int) -> None:
    """Returns once `count` results of the model are stored."""
    while sum(1 for _, model in watch.seen if model == model_id) < count:
        await watch.stored(len(watch.seen) + 1)


async def unfinished_shard(stack: Stack, runs: dict[str, str], watch: ResultWatch) -> str:
    """Returns, as "first..last", a shard of the first model's run that worker-2 took and has not
    finished yet, once there is one; "" once that run has every result."""
    while True:
        done = {record for record, model in watch.seen if model == MODELS[0]}
        if len(done) == RECORDS:
            return ""
        for line in shards(stack, "worker-2", runs):
            first, last = (int(n) for n in re.findall(r"records (\d+)\.\.(\d+)", line)[0])
            if any(f"r{i}" not in done for i in range(first, last + 1)):
                return f"{first}..{last}"
        await asyncio.sleep(0.02)


def shards(stack: Stack, worker: str, runs: dict[str, str]) -> list[str]:
    """The lines of the worker's log where it took a shard of the first model's run."""
    return [line for line in stack.log(worker).splitlines() if f"shard of run {runs[MODELS[0]]}" in line]


async def check_caught_up(stack: Stack, outcome: FaultOutcome) -> None:
    """Every server holds the same state of each stream (messages, bytes, first and last sequence),
    as its own monitoring endpoint tells: the restarted one has caught up."""
    assert stack.cluster is not None
    cluster = stack.cluster
    deadline = time.monotonic() + CAUGHT_UP_WITHIN_S
    while True:
        states = {
            stream: {name: await asyncio.to_thread(replica_state, cluster, name, stream) for name in cluster.servers}
            for stream in STREAMS
        }
        differing = {stream: by_server for stream, by_server in states.items() if len(set(by_server.values())) != 1}
        if not differing:
            outcome.note(f"every server holds the same streams: {states[DEFAULT_STREAM]}")
            return
        if time.monotonic() > deadline:
            outcome.problem(f"the servers' streams differ after {CAUGHT_UP_WITHIN_S:.0f} s: {differing}")
            return
        await asyncio.sleep(0.5)


def replica_state(cluster: NatsCluster, name: str, stream: str) -> tuple[int, int, int, int] | None:
    state = cluster.stream_state(name, stream)
    if state is None:
        return None
    return state["messages"], state["bytes"], state["first_seq"], state["last_seq"]
