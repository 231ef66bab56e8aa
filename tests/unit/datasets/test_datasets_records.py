"""Uploaded JSONL files: each record shape parses, keeps its metadata and sampling; each kind of bad
line is named with its line number, field and reason; ids come back exactly as given."""

import json

import pytest

from datasets_service.domain.errors import InvalidInput
from datasets_service.domain.records import ChatMessage, Record, Sampling
from datasets_service.domain.report import MAX_PROBLEMS
from tests.unit.datasets.checking import Uploads
from workbench.datasets.v1.datasets_pb2 import RecordFormat


def jsonl(*lines: object) -> bytes:
    return "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines).encode()


CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]


def batch(custom_id: str, url: str = "/v1/chat/completions", **body: object) -> dict[str, object]:
    body = body or ({"messages": CHAT} if url == "/v1/chat/completions" else {"prompt": "Once"})
    return {"custom_id": custom_id, "method": "POST", "url": url, "body": body}


def test_prompt_records_get_their_id_or_their_line_number(uploads: Uploads) -> None:
    checked, records = uploads.check(jsonl({"prompt": "one", "id": "a"}, {"prompt": "two", "id": 7}, {"prompt": "3"}))

    assert checked.format == RecordFormat.RECORD_FORMAT_PROMPT
    assert records == [
        Record("a", 0, prompt="one"),
        Record("7", 1, prompt="two"),
        Record("line-3", 2, prompt="3"),
    ]


def test_every_other_field_of_a_record_is_kept_as_its_metadata(uploads: Uploads) -> None:
    candidate = {"name": "Ada", "years": 12, "pedigree": ["a", {"b": None}], "ok": True, "note": "naïve ✓"}
    [record] = uploads.records(jsonl({"id": "c1", "messages": CHAT, **candidate}))

    assert record.messages == (ChatMessage("system", "Be brief."), ChatMessage("user", "Hi"))
    assert record.prompt is None
    assert json.loads(record.metadata_json) == candidate
    assert "naïve ✓" in record.metadata_json  # kept as text, not escaped


def test_a_record_without_other_fields_has_empty_metadata_and_no_sampling(uploads: Uploads) -> None:
    [record] = uploads.records(jsonl({"prompt": "x"}))

    assert (record.metadata_json, record.sampling) == ("{}", Sampling())


def test_openai_batch_lines_use_custom_id_body_and_its_sampling(uploads: Uploads) -> None:
    line = {
        **batch("req-1", messages=CHAT, model="gpt-x", temperature=0.2, top_p=1, max_completion_tokens=64, seed=7),
        "candidate": "Ada",
    }

    checked, [record] = uploads.check(jsonl(line))

    assert checked.format == RecordFormat.RECORD_FORMAT_OPENAI_BATCH
    assert (record.record_id, record.messages[1]) == ("req-1", ChatMessage("user", "Hi"))
    assert record.sampling == Sampling(temperature=0.2, top_p=1.0, max_tokens=64, seed=7)
    assert json.loads(record.metadata_json) == {"candidate": "Ada", "body": {"model": "gpt-x"}}


def test_completions_batch_lines_take_their_prompt_and_max_tokens(uploads: Uploads) -> None:
    checked, records = uploads.check(
        jsonl(batch("a", "/v1/completions", prompt="Once", max_tokens=5), batch("b", "/v1/completions", prompt="Twice"))
    )

    assert checked.format == RecordFormat.RECORD_FORMAT_OPENAI_BATCH
    assert [(r.record_id, r.prompt, r.sampling.max_tokens) for r in records] == [("a", "Once", 5), ("b", "Twice", None)]
    assert records[0].metadata_json == "{}"


def test_a_batch_file_that_mixes_endpoints_is_refused_at_the_first_line_that_differs(uploads: Uploads) -> None:
    data = jsonl(batch("a"), batch("b"), batch("c", "/v1/completions"), batch("d"), batch("e", "/v1/completions"))

    problems = uploads.problems(data)

    assert problems[0] == (
        'line 3: field "url" is "/v1/completions" but line 1 asks for "/v1/chat/completions"; a batch file sends '
        "all its requests to one endpoint (as OpenAI's Batch API requires): split the file by url"
    )
    assert [problem.split(":")[0] for problem in problems] == ["line 3", "line 5"]


def test_a_file_with_several_shapes_is_mixed(uploads: Uploads) -> None:
    checked, _ = uploads.check(jsonl({"prompt": "p"}, {"messages": CHAT}))

    assert checked.format == RecordFormat.RECORD_FORMAT_MIXED


def test_a_byte_order_mark_crlf_and_blank_lines_are_tolerated_and_line_numbers_stay_true(uploads: Uploads) -> None:
    data = b'\xef\xbb\xbf{"prompt": "first"}\r\n\r\n   \n{"prompt": "fourth"}\r\n\n'

    records = uploads.records(data)

    assert [(record.record_id, record.index, record.prompt) for record in records] == [
        ("line-1", 0, "first"),
        ("line-4", 1, "fourth"),
    ]


@pytest.mark.parametrize(
    "record_id",
    ["a/", "/a", "a//b", "%2F", "a b", " padded ", "naïve-✓-日本", "..", "a\\b", "'quoted\"", "x" * 256, "é" * 128],
)
def test_ids_keep_every_character_but_control_characters_exactly(uploads: Uploads, record_id: str) -> None:
    [record] = uploads.records(jsonl({"id": record_id, "prompt": "x"}))

    assert record.record_id == record_id
    assert record.record_id.encode() == record_id.encode()


@pytest.mark.parametrize(
    ("record_id", "reason"),
    [
        ("a\x00b", "holds a control character (U+0000 at character 2); an id may hold any character but control"),
        ("tab\there", "holds a control character (U+0009 at character 4)"),
        ("line\n", "holds a control character (U+000A at character 5)"),
        ("del\x7f", "holds a control character (U+007F at character 4)"),
        ("c1\x85", "holds a control character (U+0085 at character 3)"),
        ("x" * 257, "is 257 bytes long in UTF-8, over the limit of 256; use a shorter id"),
        ("é" * 129, "is 258 bytes long in UTF-8, over the limit of 256"),
        ("   ", "must be a non-empty string or an integer (found an empty string)"),
        ("\ud800", "holds an invalid unicode escape"),
    ],
)
def test_ids_with_control_characters_or_over_256_bytes_are_refused(
    uploads: Uploads, record_id: str, reason: str
) -> None:
    as_id = uploads.problems(jsonl({"prompt": "fine"}, {"id": record_id, "prompt": "x"}))
    as_custom_id = uploads.problems(jsonl({"prompt": "fine"}, batch(record_id)))

    assert len(as_id) == 1 and as_id[0].startswith(f'line 2: field "id" {reason}')
    assert len(as_custom_id) == 1
    assert as_custom_id[0].startswith(f'line 2: field "custom_id" {reason.replace(" or an integer", "")}')


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
        ('{"prompt": "x", "id": null}', 'line 2: field "id" must be a non-empty string or an integer (found null)'),
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
        ('{"prompt": "x", "note": "\\udfff"}', "line 2: holds an invalid unicode escape"),
        ('{"prompt": "x", "score": NaN}', "line 2: holds a number JSON cannot carry (NaN or Infinity)"),
        ('{"prompt": "x", "score": 1e999}', "line 2: holds a number JSON cannot carry (NaN or Infinity)"),
        (
            '{"method": "POST", "url": "/v1/completions", "body": {"prompt": "x"}}',
            'line 2: field "custom_id" is missing; every OpenAI batch line needs a custom_id',
        ),
        (
            '{"custom_id": 3, "method": "POST", "url": "/v1/completions", "body": {"prompt": "x"}}',
            'line 2: field "custom_id" must be a non-empty string (found a number)',
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
        (
            '{"custom_id": "r", "method": "POST", "url": "/v1/completions", "body": {"messages": []}}',
            'line 2: field "body.prompt" must be a non-empty string (found nothing)',
        ),
    ],
)
def test_each_kind_of_bad_line_names_its_line_field_and_reason(uploads: Uploads, line: str, expected: str) -> None:
    problems = uploads.problems(jsonl({"prompt": "fine"}, line))

    assert len(problems) == 1
    assert problems[0].startswith(expected)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"temperature": "hot"}, 'field "body.temperature" must be a number (found a string)'),
        ({"temperature": -1}, 'field "body.temperature" must be 0 or more (found -1)'),
        ({"top_p": 0}, 'field "body.top_p" must be more than 0 and at most 1 (found 0)'),
        ({"top_p": True}, 'field "body.top_p" must be a number (found a boolean)'),
        ({"max_tokens": 1.5}, 'field "body.max_tokens" must be an integer (found 1.5)'),
        ({"max_completion_tokens": 0}, 'field "body.max_completion_tokens" must be at least 1 (found 0)'),
        ({"seed": "7"}, 'field "body.seed" must be an integer (found a string)'),
        ({"seed": 2**64}, 'field "body.seed" is too large (found 18446744073709551616)'),
        # Found by tests/fuzz: float() of a huge integer raised OverflowError, an unhandled error (a 500).
        ({"temperature": 10**400}, f'field "body.temperature" is too large (found {"1" + "0" * 39}... (401 digits))'),
        ({"top_p": -(10**309)}, f'field "body.top_p" is too large (found -1{"0" * 38}... (310 digits))'),
        ({"max_tokens": 10**50}, f'field "body.max_tokens" is too large (found {"1" + "0" * 39}... (51 digits))'),
    ],
)
def test_the_sampling_of_a_batch_body_is_type_checked(uploads: Uploads, body: dict[str, object], expected: str) -> None:
    problems = uploads.problems(jsonl(batch("a", messages=CHAT, **body)))

    assert problems == [f"line 1: {expected}"]


def test_null_sampling_fields_are_unset_and_max_completion_tokens_wins(uploads: Uploads) -> None:
    [record] = uploads.records(
        jsonl(batch("a", messages=CHAT, temperature=None, max_tokens=10, max_completion_tokens=20))
    )

    assert record.sampling == Sampling(max_tokens=20)


def test_invalid_utf8_is_reported_with_its_line(uploads: Uploads) -> None:
    assert uploads.problems(b'{"prompt": "ok"}\n{"prompt": "caf\xe9"}\n') == [
        "line 2: not valid UTF-8 (byte 0xe9 at byte 16)"
    ]


def test_a_repeated_record_id_names_both_lines(uploads: Uploads) -> None:
    problems = uploads.problems(jsonl({"prompt": "a", "id": "x"}, {"prompt": "b"}, {"prompt": "c", "id": "x"}))

    assert problems == ['line 3: field "id" repeats the record id "x" of line 1; record ids must be unique']


def test_an_integer_id_and_its_string_are_the_same_id(uploads: Uploads) -> None:
    problems = uploads.problems(jsonl({"prompt": "a", "id": 7}, {"prompt": "b", "id": "7"}))

    assert problems == ['line 2: field "id" repeats the record id "7" of line 1; record ids must be unique']


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (
            [{"prompt": "a", "id": "line-2"}, {"prompt": "b"}],
            'line 2: field "id" repeats the record id "line-2" of line 1; record ids must be unique',
        ),
        (
            [{"prompt": "a"}, {"prompt": "b"}, {"prompt": "c", "id": "line-1"}],
            'line 3: field "id" repeats the record id "line-1" of line 1; record ids must be unique',
        ),
    ],
)
def test_an_explicit_id_may_collide_with_a_line_number_id(
    uploads: Uploads, lines: list[dict[str, str]], expected: str
) -> None:
    assert uploads.problems(jsonl(*lines)) == [expected]


def test_ids_that_only_look_like_line_numbers_do_not_collide(uploads: Uploads) -> None:
    lines = [
        {"prompt": "a", "id": "line-01"},
        {"prompt": "b"},
        {"prompt": "c", "id": "Line-2"},
        {"prompt": "d", "id": "line-1"},
    ]

    records = uploads.records(jsonl(*lines))

    assert [record.record_id for record in records] == ["line-01", "line-2", "Line-2", "line-1"]


def test_the_first_problems_are_listed_in_line_order_and_the_others_counted(uploads: Uploads) -> None:
    data = jsonl({"prompt": "a"}, "{oops", {"prompt": ""}) + b"\n" + b"nope\n" * 30

    refusal = uploads.refusal(data)

    assert [problem.line for problem in refusal.report.problems] == [2, 3, *range(4, 4 + MAX_PROBLEMS - 2)]
    assert (refusal.report.more, refusal.report.skipped_records, refusal.report.line_word) == (12, 32, "line")
    message = str(refusal)
    assert message.startswith("line 2: not valid JSON")
    assert "\n... and 12 more\n" in message
    assert message.endswith(
        "nothing was registered; fix these lines, or upload with skip_invalid to keep the valid ones"
    )
    details = refusal.details[0]
    assert (len(details.problems), details.more, details.problems[1].field) == (MAX_PROBLEMS, 12, "prompt")  # type: ignore[attr-defined]


def test_with_skip_invalid_the_valid_lines_are_kept_and_the_others_reported(uploads: Uploads) -> None:
    data = jsonl({"prompt": "a", "id": "x"}, {"prompt": 3}, "garbage", {"prompt": "b", "id": "x"}, {"prompt": "c"})

    checked, records = uploads.check(data, skip_invalid=True)

    assert [(record.record_id, record.index) for record in records] == [("x", 0), ("line-5", 1)]
    assert checked.record_count == 2
    report = checked.report
    assert (report.skipped_records, report.more) == (3, 0)
    assert [(problem.line, problem.field) for problem in report.problems] == [(2, "prompt"), (3, None), (4, "id")]


def test_a_file_whose_every_record_is_invalid_is_refused_even_with_skip_invalid(uploads: Uploads) -> None:
    with pytest.raises(InvalidInput, match="no record is valid; nothing was registered"):
        uploads.check(jsonl({"prompt": 1}), skip_invalid=True)


@pytest.mark.parametrize("data", [b"", b"\n\n  \n", b"\xef\xbb\xbf"])
def test_a_file_without_records_is_refused(uploads: Uploads, data: bytes) -> None:
    with pytest.raises(InvalidInput, match="holds no records; upload a JSONL file with one JSON object per line"):
        uploads.check(data)
