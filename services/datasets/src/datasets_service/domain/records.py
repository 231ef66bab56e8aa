"""A dataset's records as they are stored and read back.

Every valid record of an upload is stored normalized, one JSON object per line, whatever file it
came from (validation.py turns a JSONL line, a CSV row or a Parquet row into such a line):

    {"id": "q1", "prompt": "..."}                                   or "messages": [{"role", "content"}, ...]
    {"id": "q1", "prompt": "...", "metadata": {...}, "sampling": {"temperature": 0.2, "max_tokens": 64}}
    {"id": "q1", "messages": [...], "json_schema": {"type": "object", ...}}

metadata holds every other field of the record; sampling what an OpenAI batch body asks for;
json_schema the schema its response_format asks every answer to follow (structured output).
Pages of such lines (pages.py) are what ReadRecords and ListRecords read back.
"""

import json
import re
from dataclasses import dataclass, field
from typing import Any

SAMPLING_FIELDS = ("temperature", "top_p", "max_tokens", "seed")
# check_circular off: values come from a JSON parser (or a Parquet row), never cyclic.
# One encoding for stored lines and a record's metadata_json, so that a page's text holds every
# record's metadata_json as it is (what may_match relies on).
_ENCODER = json.JSONEncoder(ensure_ascii=False, check_circular=False, separators=(",", ":"), allow_nan=False)
_JSON_ESCAPED = re.compile(r'["\\\x00-\x1f]')  # what the encoder writes as an escape
_DECODER = json.JSONDecoder()


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: str
    content: str


@dataclass(frozen=True, slots=True)
class Sampling:
    """Sampling a record asks for; None: the record does not say (the run's own sampling applies)."""

    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    seed: int | None = None

    def as_dict(self) -> dict[str, float | int]:
        """The fields the record sets."""
        values = {name: getattr(self, name) for name in SAMPLING_FIELDS}
        return {name: value for name, value in values.items() if value is not None}


NO_SAMPLING = Sampling()


@dataclass(frozen=True, slots=True)
class Record:
    """One record of a dataset: exactly one of prompt / messages is set."""

    record_id: str
    index: int  # 0-based position among the records
    prompt: str | None = None
    messages: tuple[ChatMessage, ...] = ()
    metadata_json: str = "{}"  # every other field of the record, as a JSON object
    sampling: Sampling = field(default=NO_SAMPLING)
    json_schema: str = ""  # compact JSON text of the schema answers must follow; "": none

    def matches(self, needle: str) -> bool:
        """True when needle (casefolded) is in the id, the input text or the metadata JSON."""
        texts = [self.record_id, self.prompt or "", *(message.content for message in self.messages), self.metadata_json]
        return any(needle in text.casefold() for text in texts)


def normalized_line(
    record_id: str,
    prompt: str | None,
    messages: tuple[ChatMessage, ...],
    metadata: dict[str, Any],
    sampling: Sampling,
    json_schema: dict[str, Any] | None = None,
) -> bytes:
    """The record as it is stored: one JSON object and a newline.

    Raises ValueError when a value cannot be written as JSON (NaN or Infinity, say).
    """
    value: dict[str, Any] = {"id": record_id}
    if prompt is not None:
        value["prompt"] = prompt
    else:
        value["messages"] = [{"role": message.role, "content": message.content} for message in messages]
    if metadata:
        value["metadata"] = metadata
    if sampling != NO_SAMPLING:
        value["sampling"] = sampling.as_dict()
    if json_schema is not None:
        value["json_schema"] = json_schema  # stored as an object: a page stays readable JSON lines
    return (_ENCODER.encode(value) + "\n").encode()


def decode_line(line: bytes, index: int) -> Record:
    """A stored line back as a record; ValueError (or KeyError, TypeError) when it is not one."""
    value = _DECODER.decode(line.decode("utf-8"))
    messages = tuple(ChatMessage(item["role"], item["content"]) for item in value.get("messages", ()))
    sampling = value.get("sampling")
    return Record(
        record_id=value["id"],
        index=index,
        prompt=value.get("prompt"),
        messages=messages,
        metadata_json=_ENCODER.encode(value["metadata"]) if "metadata" in value else "{}",
        sampling=Sampling(**sampling) if sampling else NO_SAMPLING,
        json_schema=_ENCODER.encode(value["json_schema"]) if "json_schema" in value else "",
    )


def may_match(data: bytes, needle: str) -> bool:
    """False only when no record of a stored page can match the (casefolded) needle.

    A needle without characters the encoder escapes appears in a record's id, input or metadata
    only if it appears in the page's text: most pages of a search are then never parsed.
    """
    return _JSON_ESCAPED.search(needle) is not None or needle in data.decode("utf-8").casefold()


def decode_page(data: bytes, first_index: int) -> tuple[Record, ...]:
    """The records of a stored page, numbered from first_index."""
    return tuple(decode_line(line, first_index + at) for at, line in enumerate(data.splitlines()))
