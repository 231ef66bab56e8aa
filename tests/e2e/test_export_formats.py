"""Every export format through the gateway: a dated download with its content type, parsed back."""

import asyncio
import csv
import io
import json
from datetime import UTC, datetime

import httpx
import pytest

from devstack import Stack
from tests.conftest import jsonl

pytestmark = [pytest.mark.vllm]

RECORDS = [
    {"id": "r0", "prompt": "Name a colour.", "topic": "colours"},
    {"id": "r1", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}]},
    {"id": "r2", "prompt": "Name a fruit."},
]
MODELS = ["tiny-a", "tiny-b"]


async def finished_runs(api: httpx.AsyncClient, dataset_id: str) -> None:
    while True:
        runs = (await api.get("/admin/benchmarks", params={"dataset_id": dataset_id})).json()["runs"]
        if len(runs) == len(MODELS) and all(run["status"] in ("completed", "failed") for run in runs):
            return
        await asyncio.sleep(0.5)


def download(response: httpx.Response, extension: str, media_type: str) -> None:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(media_type)
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    assert response.headers["content-disposition"] == f'attachment; filename="golden_dataset_{today}.{extension}"'


async def test_every_export_format_downloads_dated_and_parses_back(stack: Stack, api: httpx.AsyncClient) -> None:
    upload = await api.post("/admin/datasets/upload", files={"file": ("formats.jsonl", jsonl(RECORDS))})
    assert upload.status_code == 201, upload.text
    dataset_id = upload.json()["dataset"]["dataset_id"]
    started = await api.post(
        "/admin/benchmarks/run",
        json={"dataset_id": dataset_id, "model_ids": MODELS, "sampling": {"max_tokens": 8, "temperature": 0}},
    )
    assert started.status_code == 201, started.text
    await asyncio.wait_for(finished_runs(api, dataset_id), timeout=300)
    view = (await api.get("/admin/workbench/results", params={"dataset_id": dataset_id})).json()
    answers = {
        (r["record_id"], m): result["output_text"] for r in view["records"] for m, result in r["results"].items()
    }

    for kind, record_id, model_id, extra in [
        ("golden", "r0", "tiny-a", {"note": "fine"}),
        ("fixed", "r1", "tiny-b", {"fixed_text": "=cmd()"}),  # a fix a spreadsheet would run
        ("wrong", "r2", "tiny-a", {}),
    ]:
        body = {"kind": kind, "dataset_id": dataset_id, "record_id": record_id, "model_id": model_id, **extra}
        marked = await api.post("/admin/annotations", json=body)
        assert marked.status_code == 201, marked.text

    jsonl_export = await api.get(f"/admin/export/{dataset_id}", params={"format": "jsonl"})
    download(jsonl_export, "jsonl", "application/x-ndjson")
    lines = [json.loads(line) for line in jsonl_export.text.splitlines()]
    assert [(line["record_id"], line["model_id"], line["kind"]) for line in lines] == [
        ("r0", "tiny-a", "golden"),
        ("r1", "tiny-b", "fixed"),
    ]
    assert (lines[0]["answer"], lines[0]["note"], lines[0]["annotator"]) == (answers[("r0", "tiny-a")], "fine", "admin")
    assert (lines[1]["answer"], lines[1]["fixed_text"]) == (answers[("r1", "tiny-b")], "=cmd()")
    assert lines[0]["metadata"] == {"topic": "colours"} and lines[0]["run"]["model_id"] == "tiny-a"

    csv_export = await api.get(f"/admin/export/{dataset_id}", params={"format": "csv", "kinds": "golden,fixed,wrong"})
    download(csv_export, "csv", "text/csv")
    header, *rows = list(csv.reader(io.StringIO(csv_export.text, newline="")))
    assert header[:3] == ["record_id", "model_id", "kind"] and len(rows) == 3
    assert rows[1][:3] == ["r1", "tiny-b", "fixed"] and rows[1][3] == "system: Be brief.\nuser: 2+2?"
    assert rows[1][header.index("fixed_text")] == "'=cmd()"

    chat_export = await api.get(f"/admin/export/{dataset_id}", params={"format": "openai_chat"})
    download(chat_export, "jsonl", "application/x-ndjson")
    assert [json.loads(line) for line in chat_export.text.splitlines()] == [
        {
            "messages": [
                {"role": "user", "content": "Name a colour."},
                {"role": "assistant", "content": answers[("r0", "tiny-a")]},
            ]
        },
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "2+2?"},
                {"role": "assistant", "content": "=cmd()"},
            ]
        },
    ]
    refused = await api.get(f"/admin/export/{dataset_id}", params={"format": "openai_chat", "kinds": "golden,wrong"})
    assert refused.status_code == 400 and "never a training target" in refused.json()["detail"]

    json_export = await api.get(f"/admin/export/{dataset_id}", params={"format": "json"})
    download(json_export, "json", "application/json")
    assert json_export.json() == lines

    tasks_export = await api.get(f"/admin/export/{dataset_id}", params={"format": "label_studio"})
    download(tasks_export, "json", "application/json")
    tasks = tasks_export.json()
    assert [task["data"]["record_id"] for task in tasks] == ["r0", "r1"]
    assert all([p["model_version"] for p in task["predictions"]] == MODELS for task in tasks)
    assert tasks[0]["data"]["tiny_2d_b"] == answers[("r0", "tiny-b")]
