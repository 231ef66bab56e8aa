"""JSONL datasets: parsing and validating the records of an uploaded file.

Each non-blank line is one JSON object in one of three shapes:

- prompt record:     {"prompt": "...", "id"?: str | int}
- chat record:       {"messages": [{"role": ..., "content": "..."}, ...], "id"?: str | int}
- OpenAI batch line: {"custom_id": "...", "method": "POST", "url": "/v1/chat/completions",
                      "body": {"messages": [...]}}  (or url "/v1/completions" with body {"prompt": "..."})

Other keys are ignored. A record's id is its custom_id, else its id, else "line-<N>".
"""

import json
from dataclasses import dataclass
from typing import Any

from datasets_service.domain.errors import InvalidDataset, InvalidInput, LineError
from workbench.datasets.v1.datasets_pb2 import RecordFormat

MAX_ERRORS = 20
MAX_RECORD_ID_LENGTH = 256
ROLES = ("system", "user", "assistant", "tool", "developer")
BATCH_URLS = {"/v1/chat/completions": "messages", "/v1/completions": "prompt"}
_BOM = b"\xef\xbb\xbf"
_MISSING = object()  # a field that is absent, as opposed to present with the value null


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: str
    content: str


@dataclass(frozen=True, slots=True)
class Record:
    """One record of a dataset: exactly one of prompt / messages is set."""

    record_id: str
    index: int  # 0-based position among the records
    prompt: str | None = None
    messages: tuple[ChatMessage, ...] = ()


@dataclass(frozen=True, slots=True)
class ParsedDataset:
    records: tuple[Record, ...]
    format: "RecordFormat.ValueType"


class _Invalid(Exception):
    """One field of one line is wrong (internal: becomes a LineError)."""

    def __init__(self, field: str | None, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


def parse_jsonl(data: bytes) -> ParsedDataset:
    """Parses and validates a whole JSONL file; raises InvalidDataset naming the first bad lines."""
    if data.startswith(_BOM):
        data = data[len(_BOM) :]
    records: list[Record] = []
    formats: set[RecordFormat.ValueType] = set()
    errors: list[LineError] = []
    first_line_of: dict[str, int] = {}
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            record_id, record, shape = _parse_line(raw, number, len(records))
        except _Invalid as invalid:
            errors.append(LineError(number, invalid.reason, invalid.field))
        else:
            first = first_line_of.setdefault(record_id, number)
            if first != number:
                errors.append(_duplicate(record_id, shape, number, first))
            records.append(record)
            formats.add(shape)
        if len(errors) >= MAX_ERRORS:
            raise InvalidDataset(errors, truncated=True)
    if errors:
        raise InvalidDataset(errors)
    if not records:
        raise InvalidInput("the file holds no records; upload a JSONL file with one JSON object per line")
    return ParsedDataset(tuple(records), formats.pop() if len(formats) == 1 else RecordFormat.RECORD_FORMAT_MIXED)


def _duplicate(record_id: str, shape: "RecordFormat.ValueType", number: int, first: int) -> LineError:
    field = "custom_id" if shape == RecordFormat.RECORD_FORMAT_OPENAI_BATCH else "id"
    reason = f"repeats the record id {_show(record_id)} of line {first}; record ids must be unique"
    return LineError(number, reason, field)


def _parse_line(raw: bytes, number: int, index: int) -> tuple[str, Record, "RecordFormat.ValueType"]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _Invalid(None, f"not valid UTF-8 (byte 0x{raw[error.start]:02x} at byte {error.start + 1})") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise _Invalid(None, f"not valid JSON ({error.msg} at column {error.colno})") from None
    except (ValueError, RecursionError) as error:  # a number too long to convert, nesting too deep
        raise _Invalid(None, f"not valid JSON ({str(error)[:80]})") from None
    if not isinstance(value, dict):
        raise _Invalid(None, f"must be a JSON object, found {_json_type(value)}")
    if "custom_id" in value or "body" in value:
        return _batch_line(value, number, index)
    if "messages" in value and "prompt" in value:
        raise _Invalid(None, 'has both "prompt" and "messages"; keep one of them')
    record_id = _record_id(value, "id", number, required=False)
    if "messages" in value:
        record = Record(record_id, index, messages=_messages(value["messages"], "messages"))
        return record_id, record, RecordFormat.RECORD_FORMAT_CHAT
    if "prompt" in value:
        record = Record(record_id, index, prompt=_prompt(value["prompt"], "prompt"))
        return record_id, record, RecordFormat.RECORD_FORMAT_PROMPT
    raise _Invalid(None, 'has none of "prompt", "messages" or "custom_id"; give each line one of them')


def _batch_line(value: dict[str, Any], number: int, index: int) -> tuple[str, Record, "RecordFormat.ValueType"]:
    record_id = _record_id(value, "custom_id", number, required=True)
    if value.get("method", _MISSING) != "POST":
        raise _Invalid("method", f'must be "POST" (found {_show(value.get("method", _MISSING))})')
    url = value.get("url", _MISSING)
    if not isinstance(url, str) or url not in BATCH_URLS:
        raise _Invalid("url", f"must be one of {', '.join(BATCH_URLS)} (found {_show(url)})")
    body = value.get("body", _MISSING)
    if not isinstance(body, dict):
        raise _Invalid("body", f"must be an object (found {_json_type(body)})")
    if BATCH_URLS[url] == "messages":
        record = Record(record_id, index, messages=_messages(body.get("messages", _MISSING), "body.messages"))
    else:
        record = Record(record_id, index, prompt=_prompt(body.get("prompt", _MISSING), "body.prompt"))
    return record_id, record, RecordFormat.RECORD_FORMAT_OPENAI_BATCH


def _record_id(value: dict[str, Any], field: str, number: int, required: bool) -> str:
    if field not in value:
        if required:
            raise _Invalid(field, "is missing; every OpenAI batch line needs a custom_id")
        return f"line-{number}"
    raw = value[field]
    if isinstance(raw, int) and not isinstance(raw, bool) and field == "id":
        return str(raw)
    if not isinstance(raw, str) or not raw.strip():
        kind = "a non-empty string or an integer" if field == "id" else "a non-empty string"
        raise _Invalid(field, f"must be {kind} (found {_json_type(raw)})")
    if len(raw) > MAX_RECORD_ID_LENGTH:
        raise _Invalid(field, f"is longer than {MAX_RECORD_ID_LENGTH} characters; use a shorter id")
    return _text(raw, field)


def _prompt(raw: object, field: str) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise _Invalid(field, f"must be a non-empty string (found {_json_type(raw)})")
    return _text(raw, field)


def _messages(raw: object, field: str) -> tuple[ChatMessage, ...]:
    if not isinstance(raw, list) or not raw:
        raise _Invalid(field, "must be a non-empty list")
    return tuple(_message(item, f"{field}[{position}]") for position, item in enumerate(raw))


def _message(raw: object, field: str) -> ChatMessage:
    if not isinstance(raw, dict):
        raise _Invalid(field, f"must be an object with role and content (found {_json_type(raw)})")
    role = raw.get("role", _MISSING)
    if role not in ROLES:
        raise _Invalid(f"{field}.role", f"must be one of {', '.join(ROLES)} (found {_show(role)})")
    content = raw.get("content", _MISSING)
    if not isinstance(content, str):
        raise _Invalid(f"{field}.content", f"must be a string (found {_json_type(content)})")
    return ChatMessage(role, _text(content, f"{field}.content"))


def _text(value: str, field: str) -> str:
    # JSON can spell lone surrogates (\ud800) that no UTF-8 consumer downstream accepts.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _Invalid(field, "holds an invalid unicode escape (a lone surrogate such as \\ud800)") from None
    return value


def _json_type(value: object) -> str:
    if value is _MISSING:
        return "nothing"
    if value is None:
        return "null"
    if isinstance(value, str):
        return "an empty string" if not value.strip() else "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "an array"
    return "an object" if isinstance(value, dict) else type(value).__name__


def _show(value: object, limit: int = 40) -> str:
    """A short, quoted rendering of a user value for an error message (no control characters)."""
    if not isinstance(value, str):
        return _json_type(value)
    text = json.dumps(value[:limit] + ("..." if len(value) > limit else ""), ensure_ascii=False)
    return "".join(ch if ch.isprintable() else "?" for ch in text)
