"""One record of an upload, validated: a JSONL line or a CSV or Parquet row becomes a stored line.

JSONL lines come in three shapes:

- prompt record:     {"prompt": "...", "id"?: str | int, ...}
- chat record:       {"messages": [{"role": ..., "content": "..."}, ...], "id"?: str | int, ...}
- OpenAI batch line: {"custom_id": "...", "method": "POST", "url": "/v1/chat/completions",
                      "body": {"messages": [...], "temperature"?: ..., ...}}
                     (or url "/v1/completions" with body {"prompt": "..."})

CSV and Parquet rows have the columns id (optional), prompt or messages (JSON text, or in Parquet
a list of {role, content}). A record's id is its custom_id, else its id, else "line-<N>" (JSONL) or
"row-<N>"; every other field is kept as its metadata, and the sampling fields of a batch body
(temperature, top_p, max_tokens or max_completion_tokens, seed) become its sampling.

A batch body's response_format (or a prompt or chat record's own top-level one) becomes the
record's JSON schema: {"type": "json_schema", "json_schema": {"name": ..., "schema": {...}}} gives
its schema, {"type": "json_object"} gives {"type": "object"}, {"type": "text"} or none gives none.
"""

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from datasets_service.domain.formats import FileKind
from datasets_service.domain.records import NO_SAMPLING, ChatMessage, Sampling, normalized_line
from servicehost.text import CONTROL, TEXT_CONTROL
from workbench.datasets.v1.datasets_pb2 import RecordFormat

MAX_RECORD_ID_BYTES = 256
# Lists and objects nested in one record, the record itself counted. Python's JSON encoder and
# decoder recurse once a level: a record nested nearly as deep as the recursion limit was decoded at
# upload, then overflowed the stack when encoded, or when read back from a deeper stack.
MAX_NESTING = 64
ROLES = ("system", "user", "assistant", "tool", "developer")
BATCH_URLS = {"/v1/chat/completions": "messages", "/v1/completions": "prompt"}
BATCH_STRUCTURE = ("custom_id", "method", "url", "body")
# Body fields that become the record's sampling, and the sampling field each one sets (the later
# max_completion_tokens wins over max_tokens, as in OpenAI's API).
BODY_SAMPLING = {
    "temperature": "temperature",
    "top_p": "top_p",
    "max_tokens": "max_tokens",
    "max_completion_tokens": "max_tokens",
    "seed": "seed",
}
ROW_COLUMNS = ("id", "prompt", "messages")
RECORD_STRUCTURE = ("id", "prompt", "messages", "response_format")  # the rest of a record is metadata
RESPONSE_FORMATS = ("text", "json_object", "json_schema")
JSON_OBJECT_SCHEMA: dict[str, Any] = {"type": "object"}  # what {"type": "json_object"} asks for
# Unicode category Cc, exactly: C0 controls, DEL and C1 controls. Ids and field names hold none; a
# prompt or a message (free text) may hold tabs and line breaks. NUL in particular breaks what text
# goes on to: a Postgres text column, a C string in a tokenizer, a terminal showing a result.
# (CONTROL and TEXT_CONTROL: servicehost.text, the one rule the gateway and the other services apply.)
_UNSHOWABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
TEXT_RULE = "a prompt or a message may hold tabs and line breaks, but no other control characters"
NAME_RULE = "a field's name may hold no control characters"
SHOWN_NAME_CHARACTERS = 80  # of a field's name in a problem (a name may be as long as a line)
SHOWN_NUMBER_CHARACTERS = 40
_INT64 = 2**63
# Looked up once: attribute access on a generated enum is slow, and this runs for every record.
_PROMPT = RecordFormat.RECORD_FORMAT_PROMPT
_CHAT = RecordFormat.RECORD_FORMAT_CHAT
_BATCH = RecordFormat.RECORD_FORMAT_OPENAI_BATCH
_DECODER = json.JSONDecoder()
_SURROGATE = "holds an invalid unicode escape (a lone surrogate such as \\ud800)"
_MISSING = object()  # a field that is absent, as opposed to present with the value null


class Invalid(Exception):
    """One field of one record is wrong (or the record as a whole, when field is None)."""

    def __init__(self, field: str | None, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A line or row the file's reader could not hand over as one, and why.

    fatal: the reader cannot go on past it (a CSV quote that never closes, a damaged Parquet file).
    """

    reason: str
    field: str | None = None
    fatal: bool = False


# What a file's reader hands over for one record: a JSONL line, a CSV or Parquet row, or why not.
RawRecord = bytes | Mapping[str, object] | Unreadable


@dataclass(frozen=True, slots=True)
class Valid:
    """A valid record: its id, its shape and the line it is stored as."""

    record_id: str
    id_generated: bool  # the record named no id: it has its line or row number's
    id_field: str  # where the id came from, for messages about it
    shape: "RecordFormat.ValueType"
    line: bytes
    url: str | None = None  # the endpoint of an OpenAI batch line


def validate(kind: FileKind, raw: bytes | Mapping[str, object], number: int) -> Valid:
    """The record in a JSONL line (bytes) or a CSV or Parquet row (column -> value); raises Invalid."""
    if isinstance(raw, bytes):
        return from_json_line(raw, number)
    return from_row(kind, raw, number)


def from_json_line(raw: bytes, number: int) -> Valid:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise Invalid(None, f"not valid UTF-8 (byte 0x{raw[error.start]:02x} at byte {error.start + 1})") from None
    try:
        value = _DECODER.decode(text)
    except json.JSONDecodeError as error:
        raise Invalid(None, f"not valid JSON ({error.msg} at column {error.colno})") from None
    except (ValueError, RecursionError) as error:  # a number too long to convert, nesting too deep
        raise Invalid(None, f"not valid JSON ({str(error)[:80]})") from None
    if not isinstance(value, dict):
        raise Invalid(None, f"must be a JSON object, found {json_type(value)}")
    if raw.count(b"[") + raw.count(b"{") > MAX_NESTING:  # else it cannot nest deeper: no need to look
        _check_nesting(value)
    if "custom_id" in value or "body" in value:
        return _batch_line(value)
    if "messages" in value and "prompt" in value:
        raise Invalid(None, 'has both "prompt" and "messages"; keep one of them')
    if "id" in value:
        record_id, generated = _id(value["id"], "id"), False
    else:
        record_id, generated = FileKind.JSONL.generated_id(number), True
    metadata = {key: item for key, item in value.items() if key not in RECORD_STRUCTURE}
    _check_names(metadata)
    if "messages" in value:
        messages = _messages(value["messages"], "messages")
        schema = _json_schema(value.get("response_format"), "response_format")
        line = _line(record_id, None, messages, metadata, NO_SAMPLING, "messages", schema)
        return Valid(record_id, generated, "id", _CHAT, line)
    if "prompt" in value:
        prompt = _prompt(value["prompt"], "prompt")
        schema = _json_schema(value.get("response_format"), "response_format")
        line = _line(record_id, prompt, (), metadata, NO_SAMPLING, "prompt", schema)
        return Valid(record_id, generated, "id", _PROMPT, line)
    raise Invalid(None, 'has none of "prompt", "messages" or "custom_id"; give each line one of them')


def _batch_line(value: dict[str, Any]) -> Valid:
    if "custom_id" not in value:
        raise Invalid("custom_id", "is missing; every OpenAI batch line needs a custom_id")
    raw_id = value["custom_id"]
    if not isinstance(raw_id, str) or not raw_id.strip():
        raise Invalid("custom_id", f"must be a non-empty string (found {json_type(raw_id)})")
    record_id = _id(raw_id, "custom_id")
    if value.get("method", _MISSING) != "POST":
        raise Invalid("method", f'must be "POST" (found {show(value.get("method", _MISSING))})')
    url = value.get("url", _MISSING)
    if not isinstance(url, str) or url not in BATCH_URLS:
        raise Invalid("url", f"must be one of {', '.join(BATCH_URLS)} (found {show(url)})")
    body = value.get("body", _MISSING)
    if not isinstance(body, dict):
        raise Invalid("body", f"must be an object (found {json_type(body)})")
    input_field = BATCH_URLS[url]
    prompt: str | None = None
    messages: tuple[ChatMessage, ...] = ()
    if input_field == "messages":
        messages = _messages(body.get("messages", _MISSING), "body.messages")
    else:
        prompt = _prompt(body.get("prompt", _MISSING), "body.prompt")
    metadata = {key: item for key, item in value.items() if key not in BATCH_STRUCTURE}
    taken = (input_field, "response_format", *BODY_SAMPLING)
    rest_of_body = {key: item for key, item in body.items() if key not in taken}
    _check_names(metadata)
    _check_names(rest_of_body, "body.")
    if rest_of_body:
        metadata["body"] = rest_of_body
    schema = _json_schema(body.get("response_format"), "body.response_format")
    line = _line(record_id, prompt, messages, metadata, _sampling(body), f"body.{input_field}", schema)
    return Valid(record_id, False, "custom_id", _BATCH, line, url)


def from_row(kind: FileKind, row: Mapping[str, object], number: int) -> Valid:
    """A CSV row (every value a string; an empty cell is no value) or a Parquet row (None: no value)."""

    def given(column: str) -> bool:
        return row.get(column) not in (None, "")

    if given("prompt") and given("messages"):
        raise Invalid(None, 'has both "prompt" and "messages"; keep one of them')
    if given("id"):
        record_id, generated = _id(row["id"], "id"), False
    else:
        record_id, generated = kind.generated_id(number), True
    metadata = {column: value for column, value in row.items() if column not in ROW_COLUMNS}
    _check_names(metadata)
    _check_nesting(metadata)  # Parquet's nested columns; a CSV row's cells are text
    if given("messages"):
        line = _line(record_id, None, _row_messages(row["messages"]), metadata, NO_SAMPLING, "messages")
    elif given("prompt"):
        line = _line(record_id, _prompt(row["prompt"], "prompt"), (), metadata, NO_SAMPLING, "prompt")
    else:
        column = "prompt" if "prompt" in row else "messages"
        raise Invalid(column, f"is empty; give every {kind.line_word} a {column}")
    assert kind.record_format is not None  # rows come from CSV and Parquet files only
    return Valid(record_id, generated, "id", kind.record_format, line)


def _row_messages(raw: object) -> tuple[ChatMessage, ...]:
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except (ValueError, RecursionError) as error:
            reason = error.msg if isinstance(error, json.JSONDecodeError) else str(error)[:80]
            raise Invalid(
                "messages", f'must be a JSON list of {{"role", "content"}} objects (not valid JSON: {reason})'
            ) from None
    return _messages(raw, "messages")


def _line(
    record_id: str,
    prompt: str | None,
    messages: tuple[ChatMessage, ...],
    metadata: dict[str, Any],
    sampling: Sampling,
    input_field: str,
    json_schema: dict[str, Any] | None = None,
) -> bytes:
    try:
        return normalized_line(record_id, prompt, messages, metadata, sampling, json_schema)
    except UnicodeEncodeError:  # JSON can spell lone surrogates (\ud800) that no UTF-8 consumer accepts
        raise Invalid(_surrogate_field(prompt, messages, input_field), _SURROGATE) from None
    except ValueError:
        raise Invalid(None, "holds a number JSON cannot carry (NaN or Infinity); write it as a string") from None


def _id(raw: object, field: str) -> str:
    if isinstance(raw, int) and not isinstance(raw, bool) and field == "id":
        raw = str(raw)
    if not isinstance(raw, str) or not raw.strip():
        kind = "a non-empty string or an integer" if field == "id" else "a non-empty string"
        raise Invalid(field, f"must be {kind} (found {json_type(raw)})")
    control = CONTROL.search(raw)
    if control is not None:
        raise Invalid(field, f"{_control_at(control)}; an id may hold any character but control characters")
    try:
        size = len(raw.encode("utf-8"))
    except UnicodeEncodeError:
        raise Invalid(field, _SURROGATE) from None
    if size > MAX_RECORD_ID_BYTES:
        limit = MAX_RECORD_ID_BYTES
        raise Invalid(field, f"is {size} bytes long in UTF-8, over the limit of {limit}; use a shorter id")
    return raw


def _sampling(body: dict[str, Any]) -> Sampling:
    values: dict[str, float | int] = {}
    for source, name in BODY_SAMPLING.items():
        raw = body.get(source)
        if raw is None:
            continue
        field = f"body.{source}"
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            kind = "an integer" if name in ("max_tokens", "seed") else "a number"
            raise Invalid(field, f"must be {kind} (found {json_type(raw)})")
        if name in ("max_tokens", "seed"):
            if not isinstance(raw, int):
                raise Invalid(field, f"must be an integer (found {raw})")
            if not -_INT64 <= raw < _INT64:
                raise Invalid(field, f"is too large (found {_shown_number(raw)})")
            if name == "max_tokens" and raw < 1:
                raise Invalid(field, f"must be at least 1 (found {raw})")
            values[name] = raw
            continue
        try:
            number = float(raw)
        except OverflowError:  # an integer past float's range (JSON integers have no bound)
            raise Invalid(field, f"is too large (found {_shown_number(raw)})") from None
        if not math.isfinite(number) or number < 0 or (name == "top_p" and not 0 < number <= 1):
            allowed = "more than 0 and at most 1" if name == "top_p" else "0 or more"
            raise Invalid(field, f"must be {allowed} (found {raw})")
        values[name] = number
    return Sampling(**values) if values else NO_SAMPLING  # type: ignore[arg-type]


def _shown_number(number: float) -> str:
    """A number for a problem: a long one cut short (JSON integers may have 4,300 digits)."""
    text = str(number)
    if len(text) <= SHOWN_NUMBER_CHARACTERS:
        return text
    return f"{text[:SHOWN_NUMBER_CHARACTERS]}... ({len(text.lstrip('-'))} digits)"


def _json_schema(raw: object, field: str) -> dict[str, Any] | None:
    """The JSON schema a response_format asks every answer to follow; None: free text."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise Invalid(field, f'must be an object such as {{"type": "json_schema", ...}} (found {json_type(raw)})')
    kind = raw.get("type", _MISSING)
    if kind == "text":
        return None
    if kind == "json_object":
        return dict(JSON_OBJECT_SCHEMA)
    if kind != "json_schema":
        found = "no type" if kind is _MISSING else f"type {show(kind)}"
        raise Invalid(field, f"has {found}; its type must be one of {', '.join(RESPONSE_FORMATS)}")
    described = raw.get("json_schema", _MISSING)
    if not isinstance(described, dict):
        raise Invalid(
            field,
            f'has type "json_schema" but its json_schema is {json_type(described)}; '
            'give an object {"name": ..., "schema": {...}}',
        )
    schema = described.get("schema", _MISSING)
    if not isinstance(schema, dict):
        raise Invalid(
            field,
            f"has no schema: its json_schema.schema must be the JSON schema, an object (found {json_type(schema)})",
        )
    return schema


def _prompt(raw: object, field: str) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise Invalid(field, f"must be a non-empty string (found {json_type(raw)})")
    _check_text(raw, field)
    return raw


def _check_text(text: str, field: str) -> None:
    control = TEXT_CONTROL.search(text)
    if control is not None:
        raise Invalid(field, f"{_control_at(control)}; {TEXT_RULE}")


def name_problem(name: str) -> tuple[str, str] | None:
    """Why a field's (or a column's) name cannot be kept: the name as a problem shows it (control
    characters escaped as JSON writes them), and the reason; None when it can."""
    control = CONTROL.search(name)
    if control is None:
        return None
    return shown_name(name), f"holds a control character in its name ({_where(control)}); {NAME_RULE}"


def shown_name(name: str) -> str:
    """A field's name for a problem: control characters and lone surrogates escaped (\\u0000, as
    JSON writes them; a surrogate cannot even be sent), a long one cut short."""
    cut = name[:SHOWN_NAME_CHARACTERS] + ("..." if len(name) > SHOWN_NAME_CHARACTERS else "")
    return _UNSHOWABLE.sub(lambda control: f"\\u{ord(control[0]):04x}", cut)


def _check_names(fields: Mapping[str, object], prefix: str = "") -> None:
    for name in fields:
        problem = name_problem(name)
        if problem is not None:
            raise Invalid(prefix + problem[0], problem[1])


def _check_nesting(record: Mapping[str, object]) -> None:
    """Raises Invalid naming the first field that nests lists and objects past MAX_NESTING levels."""
    for name, value in record.items():
        if not isinstance(value, dict | list):
            continue
        pending: list[tuple[object, int]] = [(value, 2)]  # without recursion: the point is the stack
        while pending:
            item, depth = pending.pop()
            if depth > MAX_NESTING:
                raise Invalid(
                    shown_name(name),
                    f"nests lists and objects more than {MAX_NESTING} levels deep (the record itself is one); "
                    "flatten it",
                )
            if isinstance(item, dict):
                pending.extend((inner, depth + 1) for inner in item.values() if isinstance(inner, dict | list))
            elif isinstance(item, list):
                pending.extend((inner, depth + 1) for inner in item if isinstance(inner, dict | list))


def _control_at(control: "re.Match[str]") -> str:
    return f"holds a control character ({_where(control)})"


def _where(control: "re.Match[str]") -> str:
    return f"U+{ord(control[0]):04X} at character {control.start() + 1}"


def _messages(raw: object, field: str) -> tuple[ChatMessage, ...]:
    if not isinstance(raw, list) or not raw:
        raise Invalid(field, "must be a non-empty list")
    messages = []
    for position, item in enumerate(raw):
        role = item.get("role", _MISSING) if isinstance(item, dict) else _MISSING
        content = item.get("content", _MISSING) if isinstance(item, dict) else _MISSING
        if role not in ROLES or not isinstance(content, str):
            _refuse_message(item, f"{field}[{position}]")
        _check_text(content, f"{field}[{position}].content")
        messages.append(ChatMessage(role, content))
    return tuple(messages)


def _refuse_message(raw: object, field: str) -> NoReturn:
    """Raises Invalid saying what is wrong with one message of a list."""
    if not isinstance(raw, dict):
        raise Invalid(field, f"must be an object with role and content (found {json_type(raw)})")
    role = raw.get("role", _MISSING)
    if role not in ROLES:
        raise Invalid(f"{field}.role", f"must be one of {', '.join(ROLES)} (found {show(role)})")
    raise Invalid(f"{field}.content", f"must be a string (found {json_type(raw.get('content', _MISSING))})")


def _surrogate_field(prompt: str | None, messages: tuple[ChatMessage, ...], input_field: str) -> str | None:
    """The input field holding a lone surrogate; None when it is in a field kept as metadata."""
    texts = [(input_field, prompt)] if prompt is not None else []
    texts += [(f"{input_field}[{at}].content", message.content) for at, message in enumerate(messages)]
    for field, text in texts:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return field
    return None


def json_type(value: object) -> str:
    """What kind of value a user gave, in words ("a string", "an empty string", "nothing")."""
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


def show(value: object, limit: int = 40) -> str:
    """A short, quoted rendering of a user value for an error message (no control characters)."""
    if not isinstance(value, str):
        return json_type(value)
    text = json.dumps(value[:limit] + ("..." if len(value) > limit else ""), ensure_ascii=False)
    return "".join(ch if ch.isprintable() else "?" for ch in text)
