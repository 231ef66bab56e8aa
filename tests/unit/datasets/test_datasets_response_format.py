"""Structured output asked for in an upload: an OpenAI batch body's response_format (or a prompt or
chat record's own) becomes the record's JSON schema, stored with it in its page and read back; a
response_format the workbench cannot honour is refused naming its line and field."""

import json

import pytest

from datasets_service.domain.pages import PageInfo, page_records
from datasets_service.domain.records import ChatMessage, Record, Sampling, normalized_line
from tests.unit.datasets.checking import Uploads
from tests.unit.datasets.test_datasets_records import CHAT, batch, jsonl

VERDICT = {
    "type": "object",
    "properties": {"recommendation": {"type": "string", "enum": ["hire", "pass"]}, "pedigree": {"type": "string"}},
    "required": ["recommendation"],
    "additionalProperties": False,
}


def json_schema_format(schema: object = VERDICT) -> dict[str, object]:
    return {"type": "json_schema", "json_schema": {"name": "verdict", "schema": schema, "strict": True}}


def test_a_json_schema_response_format_becomes_the_records_schema_in_compact_json(uploads: Uploads) -> None:
    [record] = uploads.records(jsonl(batch("a", messages=CHAT, model="m", response_format=json_schema_format())))

    assert record.json_schema == json.dumps(VERDICT, separators=(",", ":"))
    assert json.loads(record.metadata_json) == {"body": {"model": "m"}}  # not kept twice


def test_a_json_object_response_format_asks_for_any_object(uploads: Uploads) -> None:
    [record] = uploads.records(
        jsonl(batch("a", "/v1/completions", prompt="Once", response_format={"type": "json_object"}))
    )

    assert (record.prompt, record.json_schema, record.metadata_json) == ("Once", '{"type":"object"}', "{}")


@pytest.mark.parametrize("response_format", [{"type": "text"}, None])
def test_text_or_null_response_format_and_none_at_all_ask_for_no_schema(
    uploads: Uploads, response_format: object
) -> None:
    records = uploads.records(
        jsonl(batch("a", messages=CHAT, response_format=response_format), batch("b", messages=CHAT))
    )

    assert [(r.json_schema, r.metadata_json) for r in records] == [("", "{}"), ("", "{}")]


def test_prompt_and_chat_records_may_carry_their_own_response_format(uploads: Uploads) -> None:
    records = uploads.records(
        jsonl(
            {"id": "p", "prompt": "Judge Ada", "response_format": json_schema_format(), "name": "Ada"},
            {"id": "c", "messages": CHAT, "response_format": {"type": "json_object"}},
            {"id": "t", "prompt": "Free text", "response_format": {"type": "text"}},
        )
    )

    assert [(r.record_id, r.json_schema) for r in records] == [
        ("p", json.dumps(VERDICT, separators=(",", ":"))),
        ("c", '{"type":"object"}'),
        ("t", ""),
    ]
    assert [json.loads(r.metadata_json) for r in records] == [{"name": "Ada"}, {}, {}]


def test_the_schema_keeps_its_key_order_and_its_text_exactly(uploads: Uploads) -> None:
    schema = {"type": "object", "properties": {"zèbre": {"type": "string"}, "ant": {"type": "integer"}}}

    [record] = uploads.records(jsonl(batch("a", messages=CHAT, response_format=json_schema_format(schema))))

    assert record.json_schema == '{"type":"object","properties":{"zèbre":{"type":"string"},"ant":{"type":"integer"}}}'


@pytest.mark.parametrize(
    ("response_format", "reason"),
    [
        ("json", 'must be an object such as {"type": "json_schema", ...} (found a string)'),
        ({"type": "xml"}, 'has type "xml"; its type must be one of text, json_object, json_schema'),
        ({"json_schema": {"schema": {}}}, "has no type; its type must be one of text, json_object, json_schema"),
        (
            {"type": "json_schema"},
            'has type "json_schema" but its json_schema is nothing; give an object {"name": ..., "schema": {...}}',
        ),
        (
            {"type": "json_schema", "json_schema": {"name": "verdict", "schema": "object"}},
            "has no schema: its json_schema.schema must be the JSON schema, an object (found a string)",
        ),
        (
            {"type": "json_schema", "json_schema": {"name": "verdict"}},
            "has no schema: its json_schema.schema must be the JSON schema, an object (found nothing)",
        ),
    ],
)
def test_a_response_format_that_cannot_be_honoured_is_refused_naming_line_and_field(
    uploads: Uploads, response_format: object, reason: str
) -> None:
    problems = uploads.problems(jsonl(batch("a"), batch("b", messages=CHAT, response_format=response_format)))

    assert problems == [f'line 2: field "body.response_format" {reason}']


def test_a_bad_top_level_response_format_names_its_own_field(uploads: Uploads) -> None:
    problems = uploads.problems(jsonl({"prompt": "x", "response_format": {"type": "regex"}}))

    assert problems == [
        'line 1: field "response_format" has type "regex"; its type must be one of text, json_object, json_schema'
    ]


def test_a_stored_page_reads_back_each_records_schema() -> None:
    data = normalized_line("a", None, (ChatMessage("user", "Hi"),), {}, Sampling(max_tokens=3), {"type": "object"})
    data += normalized_line("b", "Say b", (), {}, Sampling())
    info = PageInfo(0, 0, 2, "ds_x.p00000", "", len(data))

    assert page_records(info, data) == (
        Record(
            "a",
            0,
            messages=(ChatMessage("user", "Hi"),),
            sampling=Sampling(max_tokens=3),
            json_schema='{"type":"object"}',
        ),
        Record("b", 1, prompt="Say b"),
    )


def test_a_legacy_page_reads_its_schema_from_the_batch_body_as_uploaded() -> None:
    data = jsonl(batch("a", messages=CHAT, response_format={"type": "json_object"})) + b"\n"

    [record] = page_records(PageInfo(0, 0, 1, "ds_x.jsonl", "", len(data), legacy=True), data)

    assert record.json_schema == '{"type":"object"}'
