"""The fault suite's scenario, shared by tests/faults/test_faults.py and bench/faults.py.

A two-model run on a real stack, one fault at a random point of it, then the counts that say what
was lost. The kinds of fault (KINDS): kill -9 of the inference worker, of each service or of the
gateway, then a restart; kill -9 of nats-server, then a restart on the same store; and a SIGSTOP of
nats-server while StartRun is under way, longer than the append timeout, then a SIGCONT.

The point is drawn from a generator seeded with "<seed>/<kind>" and printed, so a failure replays
with WB_FAULT_SEED=<seed>: a kill comes once k of the run's results are stored (a follower of the
results subjects counts them); the freeze comes once StartRun has sent n of its messages to NATS
(a subscriber to its subjects counts them), and the client then asks again with the same request
id, as after any 503, until every model's run is answered.

Meanwhile marks are made through the gateway (those answered 2xx are remembered) and a WebSocket
client follows the live frames, reconnecting with ?since=<last seq> whenever its socket closes
(observers.py). When both runs have ended and marks are acknowledged again (checks.py): every
record must have exactly one result per model in the log and in the results view, every
acknowledged mark must be in the results view, a rebuild of every read model must equal the live
one (rebuild.py), and the socket must have had every stored-event frame once.
"""

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Coroutine, Sequence
from typing import Any

import httpx
import nats
from nats.aio.msg import Msg

from devstack import Stack
from devstack.faults import freeze_nats, kill_nats, restart_nats, thaw_nats
from devstack.stack import PROCESSES
from eventlog.jetstream import DEFAULT_ACK_TIMEOUT_S
from tests.faults.checks import RECOVER_WITHIN_S, check_everything, get_json
from tests.faults.observers import CLOSE_TIMEOUT_S, Annotator, Mark, ResultWatch, SocketWatch
from tests.faults.outcome import FaultOutcome

MODELS = ("tiny-a", "tiny-b")
KINDS = ("worker", "datasets", "inference", "annotations", "gateway", "nats-server", "nats-stall")
RECORDS = 600
SHARD_SIZE = 256  # the inference service's default (WB_SHARD_SIZE): three shards per run
# Answers of many lengths (each record's own max_tokens: the run names no sampling), so results are
# stored one after another all through the run instead of in one burst at its end.
SHORTEST, LONGEST = 16, 200
# The freeze outlasts the append timeout of every process (DEFAULT_ACK_TIMEOUT_S) by this much.
FREEZE_BEYOND_S = 3.0
# What StartRun of two models sends to NATS, per model: a consumer of the run's subject is created and
# asked for its pending events (loading the run), RunRequested, then one message per shard.
LOADING_THE_RUN = (
    "$JS.API.CONSUMER.CREATE.WB_EVENTS",
    "$JS.API.CONSUMER.CREATE.WB_EVENTS.>",
    "$JS.API.CONSUMER.INFO.WB_EVENTS.>",
)
STARTRUN_SUBJECTS = (*LOADING_THE_RUN, "wb.runs.>", "wb.work.>")
STARTRUN_MESSAGES = len(MODELS) * (3 + -(-RECORDS // SHARD_SIZE))
# What a stack needs for these faults (the session's `stack` fixture sets the same): a short AckWait,
# so that a shard of a killed worker comes back within seconds.
FAULT_STACK_ENV = {"WB_WORKER_ACK_WAIT_S": "6"}
RESTART_TIMEOUT_S = 180.0
RUN_TIMEOUT_S = 300.0
START_TIMEOUT_S = 120.0
MARKS_AFTER = 3  # marks acknowledged after the fault: the annotations path works again
REQUEST_TIMEOUT_S = DEFAULT_ACK_TIMEOUT_S + 30.0  # longer than any answer a frozen NATS can delay


async def run_fault(stack: Stack, kind: str, seed: str) -> FaultOutcome:
    """One fault of this kind at a point drawn from seed. A run that does not end, an API that does
    not come back, is a problem of the outcome (with its timeline), not an exception; the stack is
    whole again when it returns."""
    if kind not in KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; one of {', '.join(KINDS)}")
    rng = random.Random(f"{seed}/{kind}")
    outcome = FaultOutcome(kind, seed)
    headers = {"Authorization": f"Bearer {stack.token}"}
    try:
        async with httpx.AsyncClient(base_url=stack.url, headers=headers, timeout=REQUEST_TIMEOUT_S) as api:
            dataset_id = await upload(api, f"{kind} {seed}")
            socket = SocketWatch(stack.ports.gateway, stack.token)
            async with background(socket.run()):
                await socket.following()
                outcome.note(f"dataset {dataset_id} uploaded; the socket follows from sequence {socket.start}")
                marks = await run_with_fault(stack, api, dataset_id, kind, rng, outcome)
                wanted = [(f"r{i}", model_id) for i in range(RECORDS) for model_id in MODELS]
                await check_everything(stack, api, dataset_id, wanted, marks, socket, outcome)
    except (TimeoutError, RuntimeError, httpx.HTTPError) as error:
        outcome.problem(f"did not finish: {type(error).__name__}: {error}")
        await asyncio.to_thread(make_whole, stack)
    outcome.seconds = time.monotonic() - outcome.began
    return outcome


async def run_with_fault(
    stack: Stack, api: httpx.AsyncClient, dataset_id: str, kind: str, rng: random.Random, outcome: FaultOutcome
) -> list[Mark]:
    """Runs both models over the dataset with the fault at its point, marking answers meanwhile;
    returns the acknowledged marks once the runs have ended and marks are acknowledged again."""
    request_id = f"fault-{kind}-{outcome.seed}"
    if kind == "nats-stall":
        runs = await start_runs_in_a_stall(stack, api, dataset_id, request_id, rng, outcome)
    else:
        runs = await start_runs(api, dataset_id, request_id, outcome)
    outcome.note(f"runs {runs}")
    watch = ResultWatch(stack.nats_url, list(runs.values()))
    annotator = Annotator(api, dataset_id, watch)
    async with background(watch.run(), annotator.run()):
        if kind != "nats-stall":
            k = rng.randint(1, RECORDS * len(MODELS) // 2)
            outcome.point = f"kill -9 after {k} of {RECORDS * len(MODELS)} results"
            await asyncio.wait_for(watch.stored(k), RUN_TIMEOUT_S)
            outcome.note(f"{len(watch.seen)} results stored: kill -9 of {kind}")
            await kill_and_restart(stack, kind)
            outcome.note(f"{kind} started again; {len(watch.seen)} results stored")
        before = len(annotator.acknowledged)
        await wait_for_runs(api, runs, outcome)
        outcome.note(f"runs ended; {annotator.made} marks made, {len(annotator.acknowledged)} acknowledged")
        try:
            await asyncio.wait_for(annotator.acknowledged_count(before + MARKS_AFTER), RECOVER_WITHIN_S)
        except TimeoutError:
            outcome.problem(f"fewer than {MARKS_AFTER} marks acknowledged after the fault in {RECOVER_WITHIN_S:.0f} s")
    outcome.marks_made = annotator.made
    return annotator.acknowledged


@contextlib.asynccontextmanager
async def background(*jobs: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    """Runs the jobs as tasks for the block; cancels them after it (a job that failed raises here)."""
    tasks = [asyncio.create_task(job) for job in jobs]
    try:
        yield
        for task in tasks:
            if task.done() and not task.cancelled() and (error := task.exception()) is not None:
                raise error
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def upload(
    api: httpx.AsyncClient,
    label: str,
    records: int = RECORDS,
    longest: int = LONGEST,
    name: str = "faults.jsonl",
) -> str:
    """A dataset of its own (the label makes its content new): answers of many lengths, each record
    naming its own max_tokens between SHORTEST and longest."""
    lines = [
        f'{{"id": "r{i}", "prompt": "Tell a short story about the number {i} ({label}).", '
        f'"sampling": {{"max_tokens": {SHORTEST + (i * 37) % (longest - SHORTEST)}}}}}\n'
        for i in range(records)
    ]
    reply = await api.post("/admin/datasets/upload", files={"file": (name, "".join(lines).encode())})
    assert reply.status_code == 201, reply.text
    return str(reply.json()["dataset"]["dataset_id"])


async def start_runs(
    api: httpx.AsyncClient,
    dataset_id: str,
    request_id: str,
    outcome: FaultOutcome,
    first: "asyncio.Task[httpx.Response] | None" = None,
) -> dict[str, str]:
    """The run of each model by model id: asks until every model's run is answered, always with the
    same request id (what a client does after a 503), so no model gets a second run."""
    runs: dict[str, str] = {}
    deadline = time.monotonic() + START_TIMEOUT_S
    attempt = first or asyncio.create_task(post_runs(api, dataset_id, request_id, MODELS))
    while True:
        try:
            reply = await attempt
        except httpx.HTTPError as error:
            outcome.point += f"; StartRun: {type(error).__name__}"
            outcome.note(f"StartRun: {type(error).__name__} {error}")
        else:
            outcome.note(f"StartRun answered {reply.status_code} {reply.text[:300]}")
            if reply.is_success:
                runs.update({run["model_id"]: run["run_id"] for run in reply.json()["runs"]})
                refused = [error["model_id"] + " " + error["error"] for error in reply.json()["errors"]]
            else:
                refused = [str(reply.status_code)]
            if refused:
                outcome.point += f"; StartRun answered {', '.join(refused)}"
        missing = [model for model in MODELS if model not in runs]
        if not missing:
            return runs
        if time.monotonic() > deadline:
            raise TimeoutError(f"no run of {missing} started within {START_TIMEOUT_S} s")
        await asyncio.sleep(1.0)
        attempt = asyncio.create_task(post_runs(api, dataset_id, request_id, missing))


async def post_runs(api: httpx.AsyncClient, dataset_id: str, request_id: str, models: Sequence[str]) -> httpx.Response:
    body = {"dataset_id": dataset_id, "model_ids": list(models), "request_id": request_id}
    return await api.post("/admin/benchmarks/run", json=body)


async def start_runs_in_a_stall(
    stack: Stack, api: httpx.AsyncClient, dataset_id: str, request_id: str, rng: random.Random, outcome: FaultOutcome
) -> dict[str, str]:
    """Starts the runs with nats-server frozen once StartRun has sent n of its NATS messages, n drawn
    from 0 (frozen before the request) to all of them; thawed after longer than the append timeout."""
    n = rng.randint(0, STARTRUN_MESSAGES)
    freeze_s = DEFAULT_ACK_TIMEOUT_S + FREEZE_BEYOND_S
    outcome.point = f"SIGSTOP of nats-server for {freeze_s:.0f} s after {n} of StartRun's {STARTRUN_MESSAGES} messages"
    tap = await nats.connect(stack.nats_url, name="fault-tap")
    frozen: list[int] = []
    seen: list[str] = []
    reached = asyncio.Event()

    async def count(msg: Msg) -> None:
        seen.append(msg.subject)
        if len(seen) == n and not frozen:
            frozen.append(freeze_nats(stack))
            reached.set()

    try:
        for subject in STARTRUN_SUBJECTS:
            await tap.subscribe(subject, cb=count)
        await tap.flush()
        if n == 0:
            frozen.append(freeze_nats(stack))
            reached.set()
        first = asyncio.create_task(post_runs(api, dataset_id, request_id, MODELS))
        waiting = asyncio.create_task(reached.wait())
        await asyncio.wait({first, waiting}, timeout=START_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        if not frozen:  # StartRun sent fewer messages: the freeze comes on the run instead
            frozen.append(freeze_nats(stack))
            outcome.point += f" (StartRun answered after {len(seen)})"
        outcome.note(f"nats-server frozen after {seen}")
        await asyncio.sleep(freeze_s)
    finally:
        for pid in frozen:
            thaw_nats(pid)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(tap.close(), CLOSE_TIMEOUT_S)
    outcome.note("nats-server continued")
    return await start_runs(api, dataset_id, request_id, outcome, first)


async def kill_and_restart(stack: Stack, kind: str) -> None:
    """kill -9 of the process (its whole process group), then the same process again."""
    if kind in PROCESSES:
        await asyncio.to_thread(stack.stop, (kind,), True)
        await asyncio.to_thread(stack.start, (kind,), RESTART_TIMEOUT_S)
    elif kind == "nats-server":
        await asyncio.to_thread(kill_nats, stack)
        await asyncio.to_thread(restart_nats, stack)
    else:
        raise ValueError(f"{kind} is not a process of the stack")


def make_whole(stack: Stack) -> None:
    """Starts again whatever a fault run that did not finish left stopped."""
    if stack.nats is None or stack.nats.process is None or stack.nats.process.poll() is not None:
        restart_nats(stack)
    stopped = tuple(name for name in PROCESSES if not stack.running(name))
    if stopped:
        stack.start(stopped, RESTART_TIMEOUT_S)


async def wait_for_runs(
    api: httpx.AsyncClient, runs: dict[str, str], outcome: FaultOutcome
) -> dict[str, dict[str, Any]]:
    """Each run as the API shows it once it has ended (the API may be away for a while)."""
    ended: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while len(ended) < len(runs):
        if time.monotonic() > deadline:
            raise TimeoutError(f"runs {sorted(set(runs.values()) - set(ended))} did not end in {RUN_TIMEOUT_S} s")
        for run_id in set(runs.values()) - set(ended):
            run = (await get_json(api, f"/admin/benchmarks/{run_id}", outcome, within_s=RUN_TIMEOUT_S))["run"]
            if run["status"] in ("completed", "failed", "cancelled"):
                ended[run_id] = run
        await asyncio.sleep(0.5)
    return ended
