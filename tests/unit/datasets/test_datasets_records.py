"""Uploaded JSONL files: each record shape parses; each kind of bad line is named with its line number."""

import json

import pytest

from datasets_service.domain.errors import InvalidDataset, InvalidInput
from datasets_service.domain.records import MAX_ERRORS, ChatMessage, Record, parse_jsonl
from workbench.datasets.v1.datasets_pb2 import RecordFormat


def jsonl(*lines: object) -> bytes:
    return "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines).encode()


def errors_of(data: bytes) -> list[str]:
    with pytest.raises(InvalidDataset) as caught:
        parse_jsonl(data)
    return [str(error) for error in caught.value.errors]


CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]


def test_prompt_records_get_their_id_or_their_line_number() -> None:
    parsed = parse_jsonl(jsonl({"prompt": "one", "id": "a"}, {"prompt": "two", "id": 7}, {"prompt": "three"}))

    assert parsed.format == RecordFormat.RECORD_FORMAT_PROMPT
    assert parsed.records == (
        Record("a", 0, prompt="one"),
        Record("7", 1, prompt="two"),
        Record("line-3", 2, prompt="three"),
    )


def test_chat_records_keep_their_messages_and_ignore_other_keys() -> None:
    parsed = parse_jsonl(jsonl({"messages": CHAT, "id": "c1", "meta": {"source": "x"}}))

    assert parsed.format == RecordFormat.RECORD_FORMAT_CHAT
    assert parsed.records[0].messages == (ChatMessage("system", "Be brief."), ChatMessage("user", "Hi"))
    assert parsed.records[0].prompt is None


def test_openai_batch_lines_use_custom_id_and_body() -> None:
    chat = {"custom_id": "req-1", "method": "POST", "url": "/v1/chat/completions", "body": {"messages": CHAT}}
    completion = {"custom_id": "req-2", "method": "POST", "url": "/v1/completions", "body": {"prompt": "Once"}}

    parsed = parse_jsonl(jsonl(chat, completion))

    assert parsed.format == RecordFormat.RECORD_FORMAT_OPENAI_BATCH
    assert [record.record_id for record in parsed.records] == ["req-1", "req-2"]
    assert parsed.records[0].messages[1] == ChatMessage("user", "Hi")
    assert parsed.records[1].prompt == "Once"


def test_a_file_with_several_shapes_is_mixed() -> None:
    assert parse_jsonl(jsonl({"prompt": "p"}, {"messages": CHAT})).format == RecordFormat.RECORD_FORMAT_MIXED


def test_a_byte_order_mark_crlf_and_blank_lines_are_tolerated_and_line_numbers_stay_true() -> None:
    data = b'\xef\xbb\xbf{"prompt": "first"}\r\n\r\n   \n{"prompt": "fourth"}\r\n\n'

    parsed = parse_jsonl(data)

    assert [(record.record_id, record.index) for record in parsed.records] == [("line-1", 0), ("line-4", 1)]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{"prompt": "a" "b"}', "line 2: not valid JSON (Expecting ',' delimiter at column 16)"),
        ("[1, 2]", "line 2: must be a JSON object, found an array"),
        ('"just text"', "line 2: must be a JSON object, found a string"),
        ('{"text": "x"}', 'line 2: has none of "prompt", "messages" or "custom_id"; give each line one of them'),
        ('{"prompt": 5}', 'line 2: field "prompt" must be a non-empty string (found a number)'),
        ('{"prompt": "  "}', 'line 2: field "prompt" must be a non-empty string (found an empty string)'),
        ('{"prompt": "x", "id": 1.5}', 'line 2: field "id" must be a non-empty string or an integer (found a number)'),
        (
            '{"prompt": "x", "id": true}',
            'line 2: field "id" must be a non-empty string or an integer (found a boolean)',
        ),
        ('{"messages": {}}', 'line 2: field "messages" must be a non-empty list'),
        ('{"messages": []}', 'line 2: field "messages" must be a non-empty list'),
        (
            '{"messages": ["hi"]}',
            'line 2: field "messages[0]" must be an object with role and content (found a string)',
        ),
        (
            '{"messages": [{"role": "user", "content": "a"}, {"role": "bot", "content": "b"}]}',
            'line 2: field "messages[1].role" must be one of system, user, assistant, tool, developer (found "bot")',
        ),
        ('{"messages": [{"role": "user"}]}', 'line 2: field "messages[0].content" must be a string (found nothing)'),
        ('{"prompt": "x", "messages": []}', 'line 2: has both "prompt" and "messages"; keep one of them'),
        ('{"prompt": "\\ud800"}', 'line 2: field "prompt" holds an invalid unicode escape'),
        (
            '{"method": "POST", "url": "/v1/completions", "body": {"prompt": "x"}}',
            'line 2: field "custom_id" is missing; every OpenAI batch line needs a custom_id',
        ),
        (
            '{"custom_id": "r", "method": "GET", "url": "/v1/completions", "body": {"prompt": "x"}}',
            'line 2: field "method" must be "POST" (found "GET")',
        ),
        (
            '{"custom_id": "r", "method": "POST", "url": "/v1/embeddings", "body": {"input": "x"}}',
            'line 2: field "url" must be one of /v1/chat/completions, /v1/completions (found "/v1/embeddings")',
        ),
        (
            '{"custom_id": "r", "method": "POST", "url": "/v1/chat/completions", "body": "x"}',
            'line 2: field "body" must be an object (found a string)',
        ),
        (
            '{"custom_id": "r", "method": "POST", "url": "/v1/chat/completions", "body": {"prompt": "x"}}',
            'line 2: field "body.messages" must be a non-empty list',
        ),
    ],
)
def test_each_kind_of_bad_line_names_its_line_field_and_reason(line: str, expected: str) -> None:
    errors = errors_of(jsonl({"prompt": "fine"}, line))

    assert len(errors) == 1
    assert errors[0].startswith(expected)


def test_invalid_utf8_is_reported_with_its_line() -> None:
    errors = errors_of(b'{"prompt": "ok"}\n{"prompt": "caf\xe9"}\n')

    assert errors == ["line 2: not valid UTF-8 (byte 0xe9 at byte 16)"]


def test_a_repeated_record_id_names_both_lines() -> None:
    errors = errors_of(jsonl({"prompt": "a", "id": "x"}, {"prompt": "b"}, {"prompt": "c", "id": "x"}))

    assert errors == ['line 3: field "id" repeats the record id "x" of line 1; record ids must be unique']


def test_an_explicit_id_may_collide_with_a_line_number_id() -> None:
    errors = errors_of(jsonl({"prompt": "a", "id": "line-2"}, {"prompt": "b"}))

    assert errors == ['line 2: field "id" repeats the record id "line-2" of line 1; record ids must be unique']


def test_errors_come_in_line_order_and_the_message_starts_with_the_first() -> None:
    with pytest.raises(InvalidDataset) as caught:
        parse_jsonl(jsonl({"prompt": "a"}, {"prompt": "b"}, "{oops", {"prompt": ""}))

    assert [error.line for error in caught.value.errors] == [3, 4]
    assert str(caught.value).startswith("line 3: not valid JSON")


def test_collecting_stops_after_the_first_errors() -> None:
    with pytest.raises(InvalidDataset) as caught:
        parse_jsonl(b"nope\n" * 1000)

    assert len(caught.value.errors) == MAX_ERRORS
    assert caught.value.truncated
    assert str(caught.value).endswith(f"(stopped after {MAX_ERRORS} errors)")


@pytest.mark.parametrize("data", [b"", b"\n\n  \n", b"\xef\xbb\xbf"])
def test_a_file_without_records_is_refused(data: bytes) -> None:
    with pytest.raises(InvalidInput, match="holds no records"):
        parse_jsonl(data)
