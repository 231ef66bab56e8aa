"""A result becomes one line of the OpenAI Batch API's output file, byte for byte."""

import hashlib
import json

from wbcli.batch_output import batch_line, json_line, line_id, unix_time

RUN = "run-1"
FINISHED_AT = "2026-03-01T12:00:00Z"


def result(record_id: str, **fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "run_id": RUN,
        "dataset_id": "ds-1",
        "model_id": "tiny-a",
        "record_id": record_id,
        "output_text": "",
        "finish_reason": "",
        "prompt_tokens": 0,
        "output_tokens": 0,
        "latency_ms": 0.0,
        "error": "",
    }
    return {**base, **fields}


def key(record_id: str) -> str:
    return hashlib.sha256(f"{RUN}\n{record_id}".encode()).hexdigest()[:32]


def test_a_result_is_a_chat_completion_with_its_usage() -> None:
    answer = result("rec-1", output_text='Ja, "gern".', finish_reason="length", prompt_tokens=7, output_tokens=16)

    line = json_line(batch_line(answer, unix_time(FINISHED_AT)))

    k = key("rec-1")
    assert line == (
        f'{{"id":"batch_req_{k}","custom_id":"rec-1","response":{{"status_code":200,"request_id":"req_{k}",'
        f'"body":{{"id":"chatcmpl-{k}","object":"chat.completion","created":1772366400,"model":"tiny-a",'
        '"choices":[{"index":0,"message":{"role":"assistant","content":"Ja, \\"gern\\"."},"finish_reason":"length"}],'
        '"usage":{"prompt_tokens":7,"completion_tokens":16,"total_tokens":23}}},"error":null}\n'
    )


def test_a_failed_record_has_no_response_and_says_why() -> None:
    answer = result("rec/2", error="the engine died on this record")

    line = json_line(batch_line(answer, 0))

    assert line == (
        f'{{"id":"batch_req_{key("rec/2")}","custom_id":"rec/2","response":null,'
        '"error":{"code":"generation_failed","message":"the engine died on this record"}}\n'
    )


def test_text_stays_utf8_on_one_line_even_with_unicode_line_separators() -> None:
    answer = result("r", output_text="naïve\nline\u2028two\u0085", prompt_tokens=1, output_tokens=2)

    line = json_line(batch_line(answer, 0))

    assert line.count("\n") == 1 and line.endswith("\n")
    assert len(line.splitlines()) == 1
    assert "naïve\\nline\\u2028two\\u0085" in line
    assert json.loads(line)["response"]["body"]["choices"][0]["message"]["content"] == "naïve\nline\u2028two\u0085"


def test_ids_name_the_run_and_record_so_the_same_results_give_the_same_file() -> None:
    assert line_id(RUN, "a") == line_id(RUN, "a")
    assert line_id(RUN, "a") != line_id("run-2", "a")
    assert line_id(RUN, "a") != line_id(RUN, "b")


def test_a_finish_reason_the_engine_did_not_give_is_stop() -> None:
    line = batch_line(result("r", output_text="x", output_tokens=1), 0)

    assert line["response"]["body"]["choices"][0]["finish_reason"] == "stop"


def test_times_from_the_api_become_unix_seconds() -> None:
    assert unix_time("2026-03-01T12:00:00+00:00") == unix_time(FINISHED_AT) == 1772366400
    assert unix_time(None) == unix_time("") == 0
