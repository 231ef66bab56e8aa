"""A run's results as the OpenAI Batch API's output file, the format `vllm run-batch` writes too.

One line per record, keyed by the record's id (`custom_id`): a chat completion in `response.body`,
or, for a record that failed, `"response": null` and an `error`. The ids are derived from the run and
the record, so writing the same results twice gives the same bytes.
"""

import hashlib
import json
from datetime import datetime
from typing import Any

FAILED_CODE = "generation_failed"
LINE_BREAKS = str.maketrans({"\u0085": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def line_id(run_id: str, record_id: str) -> str:
    """A short hex id that names one record of one run (the batch API's ids are opaque strings)."""
    return hashlib.sha256(f"{run_id}\n{record_id}".encode()).hexdigest()[:32]


def unix_time(moment: str | None) -> int:
    """Seconds since the epoch of an ISO-8601 time from the API (0 when the run has none)."""
    if not moment:
        return 0
    return int(datetime.fromisoformat(moment.replace("Z", "+00:00")).timestamp())


def batch_line(result: dict[str, Any], created: int) -> dict[str, Any]:
    """One output line for one result of the API (`created`: when its run finished, in unix seconds)."""
    key = line_id(result["run_id"], result["record_id"])
    head = {"id": f"batch_req_{key}", "custom_id": result["record_id"]}
    if result.get("error"):
        return {**head, "response": None, "error": {"code": FAILED_CODE, "message": result["error"]}}
    prompt_tokens, output_tokens = int(result["prompt_tokens"]), int(result["output_tokens"])
    body = {
        "id": f"chatcmpl-{key}",
        "object": "chat.completion",
        "created": created,
        "model": result["model_id"],
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": result["output_text"]},
                "finish_reason": result.get("finish_reason") or "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": output_tokens,
            "total_tokens": prompt_tokens + output_tokens,
        },
    }
    return {**head, "response": {"status_code": 200, "request_id": f"req_{key}", "body": body}, "error": None}


def json_line(value: dict[str, Any]) -> str:
    """Compact JSON on one line, text as UTF-8 rather than escapes.

    JSON escapes a newline inside a string, but not U+0085, U+2028 and U+2029, which some line
    readers (Python's str.splitlines, JavaScript before ES2019) take for line ends: those are escaped too.
    """
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).translate(LINE_BREAKS) + "\n"
