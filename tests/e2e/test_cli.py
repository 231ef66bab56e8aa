"""The `workbench` command line against the running stack: upload six records (one too long for the
models, so it fails alone), run two models and wait for them, write each run's results as an OpenAI
Batch API output file and read it line by line; cancel a run that is under way."""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack import Stack
from devstack.faults import freeze, thaw
from tests.conftest import jsonl

pytestmark = pytest.mark.vllm

WORKBENCH = Path(sys.executable).with_name("workbench")  # the console script `pip install -e cli` made
TOO_LONG = " ".join(["water"] * 600)  # more tokens than the demo models' max_model_len (512)
# Two of them OpenAI Batch API input lines: their custom_id must come back as the output's.
RECORDS: list[dict[str, object]] = [
    {"id": "cli-1", "prompt": "Name a colour."},
    {"id": "cli-2", "messages": [{"role": "user", "content": "What is two plus two?"}]},
    {"id": "cli/3", "prompt": "Say something about the sea."},
    {
        "custom_id": "batch-4",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "any", "messages": [{"role": "user", "content": "Count to three."}]},
    },
    {
        "custom_id": "batch-5",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "any", "messages": [{"role": "user", "content": "Describe a tree in one line."}]},
    },
    {"id": "cli-too-long", "prompt": TOO_LONG},
]
RECORD_IDS = ["cli-1", "cli-2", "cli/3", "batch-4", "batch-5", "cli-too-long"]


def workbench(stack: Stack, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WB_URL": stack.url, "WB_API_TOKEN": stack.token}
    return subprocess.run([str(WORKBENCH), *argv], env=env, capture_output=True, text=True, timeout=timeout)


def api_results(stack: Stack, run_id: str) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {stack.token}"}
    url = f"{stack.url}/admin/benchmarks/{run_id}/results"
    response = httpx.get(url, params={"offset": 0, "limit": 1000}, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    results: list[dict[str, Any]] = response.json()["results"]
    return results


def test_upload_run_two_models_wait_and_write_openai_batch_files(stack: Stack, tmp_path: Path) -> None:
    dataset_file = tmp_path / "six.jsonl"
    dataset_file.write_bytes(jsonl(RECORDS))

    upload = workbench(stack, "upload", str(dataset_file))
    assert upload.returncode == 0, upload.stderr
    dataset_id = upload.stdout.strip()
    assert dataset_id and "\n" not in dataset_id

    models = workbench(stack, "models")
    assert models.returncode == 0, models.stderr
    assert [line.split()[0] for line in models.stdout.splitlines()[1:]] == ["tiny-a", "tiny-b"]

    run = workbench(
        stack, "run", dataset_id, "--model", "tiny-a", "--model", "tiny-b", "--max-tokens", "8", "--seed", "1",
        "--wait", timeout=420,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    started = dict(reversed(line.split("\t")) for line in run.stdout.splitlines())
    assert sorted(started) == ["tiny-a", "tiny-b"]
    # A completed run counts the record that failed alone.
    assert "tiny-a: completed, 6/6 done, 1 failed" in run.stderr
    assert "tiny-b: completed, 6/6 done, 1 failed" in run.stderr

    listed = workbench(stack, "runs", "--dataset", dataset_id)
    assert listed.returncode == 0, listed.stderr
    rows = {line.split()[0]: line.split() for line in listed.stdout.splitlines()[1:]}
    assert sorted(rows) == sorted(started.values())
    assert all(
        rows[run_id][1:6] == [dataset_id, model_id, "completed", "6/6", "1"] for model_id, run_id in started.items()
    )

    for model_id, run_id in started.items():
        output = tmp_path / f"{model_id}.jsonl"
        written = workbench(stack, "results", run_id, "--format", "openai-batch", "-o", str(output))
        assert written.returncode == 0, written.stderr
        assert written.stderr == f"wrote 6 results of run {run_id} ({model_id}, 1 failed) to {output}\n"

        results = api_results(stack, run_id)
        lines = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
        # One line per record, in the order the API reports the results.
        assert [line["custom_id"] for line in lines] == [r["record_id"] for r in results]
        assert sorted(line["custom_id"] for line in lines) == sorted(RECORD_IDS)
        assert len({line["id"] for line in lines}) == len(lines)
        for line, result in zip(lines, results, strict=True):
            assert line["id"].startswith("batch_req_")
            if result["record_id"] == "cli-too-long":
                assert "maximum context length" in result["error"]
                assert line["response"] is None
                assert line["error"] == {"code": "generation_failed", "message": result["error"]}
                continue
            assert line["error"] is None and not result["error"]
            response = line["response"]
            assert response["status_code"] == 200 and response["request_id"]
            body = response["body"]
            assert (body["object"], body["model"]) == ("chat.completion", model_id)
            assert body["id"].startswith("chatcmpl-") and body["created"] > 0
            assert body["choices"] == [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": result["output_text"]},
                    "finish_reason": result["finish_reason"],
                }
            ]
            assert 0 < result["output_tokens"] <= 8 and result["prompt_tokens"] > 0
            assert body["usage"] == {
                "prompt_tokens": result["prompt_tokens"],
                "completion_tokens": result["output_tokens"],
                "total_tokens": result["prompt_tokens"] + result["output_tokens"],
            }

    # A run that has ended cannot be cancelled: the gateway's 409 in its own words.
    refused = workbench(stack, "cancel", started["tiny-a"])
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr.startswith("error: ") and "has already ended" in refused.stderr


def test_a_run_under_way_is_cancelled_and_keeps_what_it_recorded(stack: Stack, tmp_path: Path) -> None:
    # Enough work that the run is still going when the cancel arrives a moment after the start.
    records = [{"id": f"long-{i}", "prompt": f"Tell a long story about the number {i}."} for i in range(400)]
    dataset_file = tmp_path / "many.jsonl"
    dataset_file.write_bytes(jsonl(records))
    dataset_id = workbench(stack, "upload", str(dataset_file)).stdout.strip()

    start = workbench(stack, "run", dataset_id, "--model", "tiny-a", "--max-tokens", "200")
    assert start.returncode == 0, start.stderr
    run_id, model_id = start.stdout.strip().split("\t")
    assert model_id == "tiny-a"

    # The worker is held while the cancel goes through: on a loaded machine the CLI's own start-up
    # took long enough for the whole run to finish first (every record recorded, nothing to cancel).
    worker = stack.processes["worker"].pid
    freeze(worker)
    try:
        cancelled = workbench(stack, "cancel", run_id)
    finally:
        thaw(worker)

    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout == f"{run_id}\tcancelled\n"
    listed = workbench(stack, "runs", "--dataset", dataset_id)
    assert listed.stdout.splitlines()[1].split()[:4] == [run_id, dataset_id, "tiny-a", "cancelled"]
    output = tmp_path / "cancelled.jsonl"
    written = workbench(stack, "results", run_id, "-o", str(output))
    assert written.returncode == 0, written.stderr
    ids = [json.loads(line)["custom_id"] for line in output.read_text(encoding="utf-8").splitlines()]
    assert len(ids) < len(records) and len(set(ids)) == len(ids)
    assert set(ids) <= {r["id"] for r in records}


def test_a_refused_file_names_its_line_and_exits_1(stack: Stack, tmp_path: Path) -> None:
    broken = tmp_path / "broken.jsonl"
    broken.write_bytes(b'{"prompt": "fine"}\n{"prompt": 3}\n')

    refused = workbench(stack, "upload", str(broken))

    assert refused.returncode == 1
    assert refused.stdout == ""
    assert refused.stderr.startswith("error: ")
    assert 'line 2: field "prompt"' in refused.stderr
    assert "Traceback" not in refused.stderr
