"""Each command against answers shaped like the gateway's (an httpx transport, no socket), and how
errors are printed: `error: <detail>`, exit code 1, never a traceback."""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from wbcli.__main__ import main
from wbcli.api import Settings
from wbcli.board import RunBoard
from wbcli.commands import Context, interrupted

Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WB_URL", "http://gateway.test")
    monkeypatch.setenv("WB_API_TOKEN", "secret")


def run_cli(argv: list[str], handler: Handler, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv, transport=httpx.MockTransport(handler))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def view(run_id: str, model_id: str, **fields: Any) -> dict[str, Any]:
    base = {
        "run_id": run_id,
        "dataset_id": "ds-1",
        "model_id": model_id,
        "status": "queued",
        "total": 3,
        "done": 0,
        "failed": 0,
        "output_tokens": 0,
        "tokens_per_second": 0.0,
        "eta_seconds": 0.0,
        "error": "",
        "requested_at": "2026-03-01T12:00:00Z",
        "started_at": None,
        "finished_at": None,
    }
    return {**base, **fields}


def refused_upload(detail: str) -> Handler:
    problems = [
        {"line": 3, "field": "prompt", "reason": "must be a string"},
        {"line": 5, "field": "", "reason": "not valid JSON"},
    ]
    body = {"error": "INVALID_ARGUMENT", "detail": detail, "problems": problems, "more": 4, "line_word": "line"}
    return lambda request: httpx.Response(400, json=body)


def test_a_refused_upload_prints_its_problems_with_their_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bad.jsonl").write_text('{"prompt": 1}\n')

    code, out, err = run_cli(["upload", str(tmp_path / "bad.jsonl")], refused_upload("the file was refused"), capsys)

    assert (code, out) == (1, "")
    assert err == (
        "error: the file was refused\n"
        '       line 3: field "prompt" must be a string\n'
        "       line 5: not valid JSON\n"
        "       ... and 4 more\n"
    )


def test_problems_the_detail_already_lists_are_not_printed_twice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bad.jsonl").write_text('{"prompt": 1}\n')
    detail = 'line 3: field "prompt" must be a string\nline 5: not valid JSON\n... and 4 more'

    code, _, err = run_cli(["upload", str(tmp_path / "bad.jsonl")], refused_upload(detail), capsys)

    assert code == 1
    assert err == (
        'error: line 3: field "prompt" must be a string\n       line 5: not valid JSON\n       ... and 4 more\n'
    )


def test_an_upload_prints_the_dataset_id_and_what_was_left_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "cands.jsonl").write_text('{"prompt": "hi"}\n{"prompt": 1}\n')
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        report = {"problems": [{"line": 2, "field": "prompt", "reason": "must be a string"}], "more": 0}
        dataset = {"dataset_id": "ds-9", "name": "cands.jsonl", "record_count": 1}
        body = {"dataset": dataset, "already_registered": False, "report": {**report, "skipped_records": 1}}
        return httpx.Response(201, json=body)

    code, out, err = run_cli(["upload", str(tmp_path / "cands.jsonl"), "--skip-invalid"], handler, capsys)

    assert (code, out) == (0, "ds-9\n")
    assert err == (
        'registered cands.jsonl: 1 records\nleft out 1 invalid records:\n  line 2: field "prompt" must be a string\n'
    )
    assert sent[0].url.params["skip_invalid"] == "true"
    assert sent[0].headers["authorization"] == "Bearer secret"
    assert b'filename="cands.jsonl"' in sent[0].read()


def test_a_missing_token_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("WB_API_TOKEN")

    code, _, err = run_cli(["models"], lambda request: httpx.Response(500), capsys)

    assert code == 1
    assert err.startswith("error: no API token: set WB_API_TOKEN or pass --token")


@pytest.mark.parametrize(
    ("response", "printed"),
    [
        (
            httpx.Response(401, json={"error": "UNAUTHORIZED", "detail": "x"}),
            "error: the gateway refused the API token",
        ),
        (httpx.Response(502, text="Bad Gateway"), "error: HTTP 502 from the gateway: Bad Gateway\n"),
        (httpx.Response(404, json={"error": "NOT_FOUND", "detail": "no run r-x"}), "error: no run r-x\n"),
    ],
)
def test_an_error_answer_is_printed_in_the_gateways_words(
    response: httpx.Response, printed: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(["cancel", "r-x"], lambda request: response, capsys)

    assert code == 1
    assert err.startswith(printed)


def test_an_unreachable_gateway_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    code, _, err = run_cli(["runs"], refuse, capsys)

    assert code == 1
    assert err == (
        "error: cannot reach the workbench at http://gateway.test (connection refused): "
        "is it running? (WB_URL or --url)\n"
    )


def test_run_prints_each_started_run_and_each_model_that_did_not_start(capsys: pytest.CaptureFixture[str]) -> None:
    bodies: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        if len(bodies) == 1:
            raise httpx.ReadTimeout("the answer was lost")
        errors = [{"model_id": "tiny-c", "error": "NOT_FOUND", "detail": "no model tiny-c in the models file"}]
        return httpx.Response(201, json={"runs": [view("r-1", "tiny-a")], "errors": errors})

    code, out, err = run_cli(["run", "ds-1", "-m", "tiny-a", "-m", "tiny-c", "--seed", "3"], handler, capsys)

    assert (code, out) == (1, "r-1\ttiny-a\n")
    assert err == "error: tiny-c: no model tiny-c in the models file\n"
    # The retry after the lost answer is the same request, so the service starts nothing twice.
    assert len(bodies) == 2 and bodies[0] == bodies[1]
    assert bodies[0]["sampling"] == {"seed": 3} and bodies[0]["request_id"]


def test_when_no_run_starts_every_models_error_is_printed(capsys: pytest.CaptureFixture[str]) -> None:
    errors = [
        {"model_id": "a", "error": "NOT_FOUND", "detail": "no dataset ds-x"},
        {"model_id": "b", "error": "NOT_FOUND", "detail": "no dataset ds-x"},
    ]
    body = {"error": "NOT_FOUND", "detail": "no dataset ds-x", "errors": errors}

    code, out, err = run_cli(["run", "ds-x", "-m", "a", "-m", "b"], lambda r: httpx.Response(404, json=body), capsys)

    assert (code, out) == (1, "")
    assert err == "error: no dataset ds-x\n       a: no dataset ds-x\n       b: no dataset ds-x\n"


def results_gateway(results: list[dict[str, Any]], fail_at: int | None = None) -> tuple[Handler, list[int]]:
    """Answers a run and its results two at a time (as if the page limit were 2), noting the offsets asked."""
    offsets: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/admin/benchmarks/r-1":
            finished = view("r-1", "tiny-a", status="completed", finished_at="2026-03-01T12:00:00Z")
            return httpx.Response(200, json={"run": finished})
        assert request.url.path == "/admin/benchmarks/r-1/results"
        offset = int(request.url.params["offset"])
        assert request.url.params["limit"] == "1000"
        offsets.append(offset)
        if offset == fail_at:
            return httpx.Response(503, json={"error": "UNAVAILABLE", "detail": "the inference service is down"})
        return httpx.Response(200, json={"results": results[offset : offset + 2], "total": len(results)})

    return handler, offsets


def result(record_id: str, output: str = "", error: str = "") -> dict[str, Any]:
    return {
        "run_id": "r-1",
        "dataset_id": "ds-1",
        "model_id": "tiny-a",
        "record_id": record_id,
        "output_text": output,
        "finish_reason": "stop" if output else "",
        "prompt_tokens": 4,
        "output_tokens": 2 if output else 0,
        "latency_ms": 12.5,
        "error": error,
    }


def test_results_page_through_every_result_into_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = [result("a", "one"), result("b", error="engine died"), result("c", "three")]
    handler, offsets = results_gateway(results)
    target = tmp_path / "out.jsonl"

    code, out, err = run_cli(["results", "r-1", "--format", "openai-batch", "-o", str(target)], handler, capsys)

    assert (code, out, offsets) == (0, "", [0, 2])
    lines = [json.loads(line) for line in target.read_text().splitlines()]
    assert [line["custom_id"] for line in lines] == ["a", "b", "c"]
    assert [line["error"] for line in lines] == [None, {"code": "generation_failed", "message": "engine died"}, None]
    assert lines[2]["response"]["body"]["created"] == 1772366400
    assert err == f"wrote 3 results of run r-1 (tiny-a, 1 failed) to {target}\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


def test_jsonl_results_are_written_as_the_api_gives_them(capsys: pytest.CaptureFixture[str]) -> None:
    results = [result("a", "one"), result("b", "two")]
    handler, _ = results_gateway(results)

    code, out, _ = run_cli(["results", "r-1", "--format", "jsonl"], handler, capsys)

    assert code == 0
    assert [json.loads(line) for line in out.splitlines()] == results


def test_results_that_fail_halfway_leave_no_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    handler, _ = results_gateway([result("a", "1"), result("b", "2"), result("c", "3")], fail_at=2)
    target = tmp_path / "out.jsonl"

    code, _, err = run_cli(["results", "r-1", "-o", str(target)], handler, capsys)

    assert code == 1
    assert err == "error: the inference service is down\n"
    assert list(tmp_path.iterdir()) == []


def test_runs_and_models_print_tables_without_folding_ids(capsys: pytest.CaptureFixture[str]) -> None:
    long_id = "run-" + "0123456789" * 8
    runs = [view(long_id, "tiny-a", status="running", done=1, tokens_per_second=1234.5, eta_seconds=65)]
    workers = [{"worker": "w1", "state": "ready"}, {"worker": "w2", "state": "loading"}]
    models = [{"model_id": "tiny-a", "display_name": "Tiny [a]", "backend": "vllm", "workers": workers}]

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/admin/models":
            return httpx.Response(200, json={"models": models})
        assert request.url.params["dataset_id"] == "ds-1"
        return httpx.Response(200, json={"runs": runs})

    _, listed, _ = run_cli(["runs", "--dataset", "ds-1"], handler, capsys)
    _, table, _ = run_cli(["models"], handler, capsys)

    row = listed.splitlines()[1].split()
    assert row[:6] == [long_id, "ds-1", "tiny-a", "running", "1/3", "0"]
    assert row[6:9] == ["1,234.5", "1m", "05s"]
    assert table.splitlines()[1].split() == ["tiny-a", "Tiny", "[a]", "vllm", "w1", "ready,", "w2", "loading"]


def test_ctrl_c_during_wait_cancels_the_unfinished_runs_when_told_to(capsys: pytest.CaptureFixture[str]) -> None:
    cancelled: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.method == "POST" and request.url.path.endswith("/cancel")
        run_id = request.url.path.split("/")[-2]
        cancelled.append(run_id)
        return httpx.Response(200, json={"run": view(run_id, "tiny-b", status="cancelled")})

    ctx = Context(Settings("http://gateway.test", "secret"), httpx.MockTransport(handler))
    board = RunBoard.of([view("r-1", "tiny-a", status="completed"), view("r-2", "tiny-b", status="running")])

    code = interrupted(ctx, board, cancel_without_asking=True)

    assert (code, cancelled) == (130, ["r-2"])
    assert capsys.readouterr().err == "cancelled run r-2 (tiny-b): cancelled\n"


def test_ctrl_c_without_a_terminal_to_ask_leaves_the_runs_going(capsys: pytest.CaptureFixture[str]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("nothing may be cancelled")

    ctx = Context(Settings("http://gateway.test", "secret"), httpx.MockTransport(handler))

    code = interrupted(ctx, RunBoard.of([view("r-2", "tiny-b", status="running")]), cancel_without_asking=False)

    assert code == 130
    assert "the runs go on" in capsys.readouterr().err


def test_run_wait_without_a_socket_polls_until_every_run_has_finished(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def no_socket(*args: object, **kwargs: object) -> None:
        raise OSError("connection refused")

    monkeypatch.setattr("wbcli.watch.connect", no_socket)
    monkeypatch.setattr("wbcli.watch.POLL_S", 0.0)
    reads = {"r-1": 0, "r-2": 0}
    answers = {
        "r-1": [
            view("r-1", "tiny-a", status="running", done=1),
            view("r-1", "tiny-a", status="completed", done=3, failed=1, tokens_per_second=42.0),
        ],
        "r-2": [view("r-2", "tiny-b", status="failed", done=0, error="the model cannot be loaded")],
    }

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(201, json={"runs": [view("r-1", "tiny-a"), view("r-2", "tiny-b")], "errors": []})
        run_id = request.url.path.split("/")[-1]
        seen = answers[run_id]
        reads[run_id] += 1
        return httpx.Response(200, json={"run": seen[min(reads[run_id], len(seen)) - 1]})

    code, out, err = run_cli(["run", "ds-1", "-m", "tiny-a", "-m", "tiny-b", "--wait"], handler, capsys)

    assert (code, out) == (1, "r-1\ttiny-a\nr-2\ttiny-b\n")
    assert reads == {"r-1": 2, "r-2": 1}  # a finished run is not asked again
    assert err.splitlines() == [
        "live updates unavailable (connection refused); asking every 0 s",
        "tiny-a: running",
        "tiny-b: failed: the model cannot be loaded",
        "tiny-a: completed",
        "tiny-a: completed, 3/3 done, 1 failed, 42.0 tok/s",
        "tiny-b: failed, 0/3 done, 0 failed: the model cannot be loaded",
    ]


def test_a_run_that_has_ended_does_not_stop_the_others_being_cancelled(capsys: pytest.CaptureFixture[str]) -> None:
    asked: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        run_id = request.url.path.split("/")[-2]
        asked.append(run_id)
        if run_id == "r-1":
            return httpx.Response(409, json={"error": "FAILED_PRECONDITION", "detail": "run r-1 has already ended"})
        return httpx.Response(200, json={"run": view(run_id, "tiny-b", status="cancelled")})

    code, out, err = run_cli(["cancel", "r-1", "r-2"], handler, capsys)

    assert (code, asked) == (1, ["r-1", "r-2"])
    assert out == "r-2\tcancelled\n"
    assert err == "error: run r-1 has already ended\n"
