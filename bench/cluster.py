"""One model's run on the loopback cluster with one worker, then two; and what the event log can take.

    python bench/cluster.py [--records 1000]

The stack of `make run-cluster`: three nats-servers in one JetStream cluster (every stream with 3
replicas, every write fsynced as in the Kubernetes manifests: WB_NATS_SYNC=always), the services, and
workers serving tiny-a only.
A fixed workload (RECORDS records of tiny-a, each answer up to MAX_TOKENS tokens) runs once with
one worker, then again (new records, same shape) with a second worker started beside it; each
run is timed from StartRun to its completion as the API shows it, after a run of the same shape
that warms the engines (with two workers its four shards reach both). Each worker's engine is bound
to a core of its own (VLLM_CPU_OMP_THREADS_BIND), as each GPU worker has a GPU of its own (vLLM's
CPU threads wait for each other at every step, so two engines on the same cores stall each other).
The CPU seconds each part of the stack used during each run are printed too: on a small machine
one worker may already take every core, and a second cannot add any.

Then the event log's capacity in the same run: results shaped like the run's (the same sizes)
appended to a stream of their own on the same cluster with the same settings as the event log
(3 replicas, file storage, dedup ids), many in flight, as the workers append them.

Printed: the stored bytes per result (the event log's bytes per replica over the run's results,
the run's own events included; and the files that grew on the server's disk), the mean answer's
bytes, events/s of each run. The last lines:
    results_per_s_1: X      results a second with one worker
    results_per_s_2: Y      with two
    eventlog_headroom: Z    events/s the log sustains / events/s the two-worker run produced
"""

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# This folder holds eventlog.py, named like the library: keep it from shadowing the package.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import httpx  # noqa: E402

from devstack import Stack, StackPorts  # noqa: E402
from devstack.__main__ import DEMO_MODELS_FILE, build_demo_models  # noqa: E402
from devstack.cluster import NatsCluster  # noqa: E402
from devstack.stack import SERVICES  # noqa: E402
from eventlog import DEFAULT_STREAM, JetStreamEventStore, NewEvent, StreamSettings  # noqa: E402
from workbench.inference.v1.inference_pb2 import ResultRecorded  # noqa: E402

MODEL = "tiny-a"
RECORDS = 4000
MAX_TOKENS = 64
APPENDS = 20_000
APPEND_BATCH = 2_000
RUN_TIMEOUT_S = 900.0


async def upload(api: httpx.AsyncClient, records: int) -> str:
    label = uuid.uuid4().hex[:8]
    lines = [
        f'{{"id": "r{i}", "prompt": "Tell a short story about the number {i} ({label}).", '
        f'"sampling": {{"max_tokens": {MAX_TOKENS}}}}}\n'
        for i in range(records)
    ]
    reply = await api.post("/admin/datasets/upload", files={"file": ("bench.jsonl", "".join(lines).encode())})
    reply.raise_for_status()
    return str(reply.json()["dataset"]["dataset_id"])


def cpu_seconds(stack: Stack) -> dict[str, float]:
    """CPU seconds used so far by the workers (their engines included), the nats-servers and the
    services with the gateway: each leads a process group of its own."""
    assert stack.cluster is not None
    kinds = {proc.pid: "workers" if name.startswith("worker") else "services" for name, proc in stack.processes.items()}
    kinds |= {server.process.pid: "nats" for server in stack.cluster.servers.values() if server.process is not None}
    used = dict.fromkeys(("workers", "nats", "services"), 0.0)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        kind = kinds.get(int(fields[2]))  # the process group
        if kind is not None:
            used[kind] += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return used


def disk_bytes(stack: Stack, stream: str = DEFAULT_STREAM) -> int:
    """The most any server's files of the stream take on disk (blocks, indexes, its raft log)."""
    assert stack.cluster is not None
    return max(
        sum(path.stat().st_size for path in server.store_dir.glob(f"jetstream/**/{stream}/**/*") if path.is_file())
        for server in stack.cluster.servers.values()
    )


async def stream_state(events: JetStreamEventStore) -> tuple[int, int]:
    """The event stream's (last sequence, bytes)."""
    info = await events.js.stream_info(events.stream)
    return info.state.last_seq, info.state.bytes


async def timed_run(stack: Stack, records: int) -> dict[str, Any]:
    """One run of MODEL over a new dataset: its seconds, events and bytes stored, and its results."""
    headers = {"Authorization": f"Bearer {stack.token}"}
    events = await JetStreamEventStore.connect(stack.nats_url)
    try:
        async with httpx.AsyncClient(base_url=stack.url, headers=headers, timeout=120) as api:
            dataset_id = await upload(api, records)
            seq_before, bytes_before = await stream_state(events)
            disk_before = await asyncio.to_thread(disk_bytes, stack)
            cpu_before = await asyncio.to_thread(cpu_seconds, stack)
            began = time.monotonic()
            body = {"dataset_id": dataset_id, "model_ids": [MODEL], "request_id": uuid.uuid4().hex}
            reply = await api.post("/admin/benchmarks/run", json=body)
            reply.raise_for_status()
            (run,) = reply.json()["runs"]
            while True:
                shown = (await api.get(f"/admin/benchmarks/{run['run_id']}")).json()["run"]
                if shown["status"] in ("completed", "failed", "cancelled"):
                    break
                if time.monotonic() - began > RUN_TIMEOUT_S:
                    raise TimeoutError(f"run {run['run_id']} did not end in {RUN_TIMEOUT_S} s")
                await asyncio.sleep(0.1)
            seconds = time.monotonic() - began
        cpu_after = await asyncio.to_thread(cpu_seconds, stack)
        seq_after, bytes_after = await stream_state(events)
        disk_after = await asyncio.to_thread(disk_bytes, stack)
        results = [stored.event for stored in await events.read([f"wb.results.{run['run_id']}"])]
    finally:
        await events.close()
    if shown["status"] != "completed" or shown["done"] != records:
        raise RuntimeError(f"run {run['run_id']}: {shown['status']}, {shown['done']} of {records} done")
    return {
        "seconds": seconds,
        "events": seq_after - seq_before,
        "bytes": bytes_after - bytes_before,
        "disk": disk_after - disk_before,
        "cpu": {kind: cpu_after[kind] - cpu_before[kind] for kind in cpu_after},
        "results": results,
    }


async def append_rate(url: str, like: list[Any]) -> float:
    """Events a second the cluster stores when results shaped like `like` are appended, many in
    flight, to a stream configured as the event log is (3 replicas, file storage, dedup ids)."""
    events = await JetStreamEventStore.connect(url, stream="BENCH_LOG")
    try:
        await events.ensure_stream(StreamSettings(subjects=["bench.>"], replicas=3))
        run_id = uuid.uuid4().hex[:12]

        def result(i: int) -> NewEvent:
            event = ResultRecorded()
            event.CopyFrom(like[i % len(like)])  # a result of the run, under a run id of its own
            event.run_id, event.record_id = run_id, f"r{i}"
            return NewEvent(f"bench.results.{run_id}", event, msg_id=f"{run_id}:r{i}")

        began = time.monotonic()
        for start in range(0, APPENDS, APPEND_BATCH):
            await events.append_many([result(i) for i in range(start, start + APPEND_BATCH)])
        seconds = time.monotonic() - began
        await events.js.delete_stream("BENCH_LOG")
    finally:
        await events.close()
    return APPENDS / seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=RECORDS, help=f"records per run (default {RECORDS})")
    parser.add_argument("--var", type=Path, help="keep the stack's logs and stores here (default: a temporary folder)")
    args = parser.parse_args()
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    build_demo_models(REPO / "var")
    with tempfile.TemporaryDirectory(prefix="wb-cluster-") as folder:
        var = args.var or Path(folder)
        stack = Stack(
            REPO,
            var,
            StackPorts.free(),
            models_file=DEMO_MODELS_FILE,
            cluster=NatsCluster(var / "nats-cluster", sync="always"),  # as the manifests' nats.conf
            extra_workers={"worker-2": {"VLLM_CPU_OMP_THREADS_BIND": "1"}},
            extra_env={"WB_WORKER_MODELS": MODEL, "VLLM_CPU_OMP_THREADS_BIND": "0"},
        )
        try:
            stack.start((*SERVICES, "worker", "gateway"), timeout=300)
            asyncio.run(timed_run(stack, args.records))  # warms the engine and the services' paths
            one = asyncio.run(timed_run(stack, args.records))
            stack.start(("worker-2",), timeout=300)
            asyncio.run(timed_run(stack, args.records))  # warms the second engine
            two = asyncio.run(timed_run(stack, args.records))
            log_rate = asyncio.run(append_rate(stack.nats_url, two["results"]))
        finally:
            stack.stop()
    results = two["results"]
    per_result = two["bytes"] / len(results)
    disk_per_result = two["disk"] / len(results)
    text = sum(len(result.output_text.encode()) for result in results) / len(results)
    tokens = sum(result.output_tokens for result in results) / len(results)
    produced = two["events"] / two["seconds"]
    print(f"workload: {args.records} records of {MODEL}, up to {MAX_TOKENS} tokens each; stream {DEFAULT_STREAM} R3")
    print(f"1 worker: {one['seconds']:.1f} s, {one['events']} events ({one['events'] / one['seconds']:.0f}/s)")
    print(f"2 workers: {two['seconds']:.1f} s, {two['events']} events ({produced:.0f}/s)")
    for label, run in (("1 worker", one), ("2 workers", two)):
        split = ", ".join(f"{kind} {seconds:.1f}" for kind, seconds in run["cpu"].items())
        print(f"cpu_seconds with {label} ({run['seconds']:.1f} s on {os.cpu_count()} cores): {split}")
    print(f"stored_bytes_per_result: {per_result:.0f} (mean answer {text:.0f} bytes, {tokens:.1f} tokens)")
    print(f"disk_bytes_per_result: {disk_per_result:.0f} (per server; each of the 3 holds a copy)")
    print(f"eventlog_appends_per_s: {log_rate:.0f}")
    print(f"results_per_s_1: {args.records / one['seconds']:.1f}")
    print(f"results_per_s_2: {args.records / two['seconds']:.1f}")
    print(f"eventlog_headroom: {log_rate / produced:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
