"""Text safety of uploads: a prompt, a message's content or a field's name holding NUL or another
control character is refused with its line (or row), its field and why; tabs and line breaks in a
prompt or a message stay as they are. (Ids: test_datasets_records.py.)"""

import io
import json
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datasets_service.domain.errors import InvalidDataset
from tests.unit.datasets.checking import Uploads

CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
TEXT_RULE = "a prompt or a message may hold tabs and line breaks, but no other control characters"
NAME_RULE = "a field's name may hold no control characters"


def jsonl(*lines: object) -> bytes:
    return "\n".join(json.dumps(line) for line in lines).encode()


def batch(url: str, body: dict[str, object]) -> dict[str, object]:
    return {"custom_id": "r1", "method": "POST", "url": url, "body": body}


def parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ({"prompt": "a\x00b"}, 'line 2: field "prompt" holds a control character (U+0000 at character 2); '),
        ({"prompt": "red \x1b[31m"}, 'line 2: field "prompt" holds a control character (U+001B at character 5)'),
        ({"prompt": "x\x7f"}, 'line 2: field "prompt" holds a control character (U+007F at character 2)'),
        ({"prompt": "next\x85line"}, 'line 2: field "prompt" holds a control character (U+0085 at character 5)'),
        ({"prompt": "form\x0cfeed"}, 'line 2: field "prompt" holds a control character (U+000C at character 5)'),
        (
            {"messages": [CHAT[0], {"role": "user", "content": "hi\x00"}]},
            'line 2: field "messages[1].content" holds a control character (U+0000 at character 3)',
        ),
        (
            batch("/v1/completions", {"prompt": "\x08back"}),
            'line 2: field "body.prompt" holds a control character (U+0008 at character 1)',
        ),
        (
            batch("/v1/chat/completions", {"messages": [{"role": "user", "content": "\x9b"}]}),
            'line 2: field "body.messages[0].content" holds a control character (U+009B at character 1)',
        ),
    ],
)
def test_a_prompt_or_message_with_a_control_character_is_refused_naming_line_and_field(
    uploads: Uploads, line: dict[str, object], expected: str
) -> None:
    problems = uploads.problems(jsonl({"prompt": "fine"}, line))

    assert len(problems) == 1
    assert problems[0].startswith(expected)
    assert problems[0].endswith(TEXT_RULE)


def test_tabs_and_line_breaks_in_a_prompt_or_message_are_kept_exactly(uploads: Uploads) -> None:
    text = "col\tcol\r\nnext line\n"

    records = uploads.records(jsonl({"prompt": text}, {"messages": [{"role": "user", "content": text}]}))

    assert (records[0].prompt, records[1].messages[0].content) == (text, text)


@pytest.mark.parametrize(
    ("line", "field", "position"),
    [
        ({"prompt": "x", "na\x00me": "Ada"}, "na\\u0000me", "U+0000 at character 3"),
        ({"prompt": "x", "\x1f": 1}, "\\u001f", "U+001F at character 1"),
        (
            {**batch("/v1/completions", {"prompt": "x", "mo\x85del": "m"}), "tag": 1},
            "body.mo\\u0085del",
            "U+0085 at character 3",
        ),
        ({**batch("/v1/completions", {"prompt": "x"}), "t\x7f": 1}, "t\\u007f", "U+007F at character 2"),
    ],
)
def test_a_field_whose_name_holds_a_control_character_is_refused_and_named_escaped(
    uploads: Uploads, line: dict[str, object], field: str, position: str
) -> None:
    [problem] = uploads.refusal(jsonl({"prompt": "fine"}, line)).report.problems

    assert (problem.line, problem.field) == (2, field)
    assert problem.reason == f"holds a control character in its name ({position}); {NAME_RULE}"


def test_a_field_named_with_a_lone_surrogate_is_shown_escaped_in_a_problem(uploads: Uploads) -> None:
    # Found by tests/fuzz: a problem naming such a field could not be encoded for its report (UTF-8
    # has no lone surrogates): the refusal itself failed, with an unhandled UnicodeEncodeError.
    too_deep = b'{"prompt": "x", "a\\ud800": ' + b"[" * 70 + b"]" * 70 + b"}"
    control = b'{"prompt": "x", "\\u0000\\udfff": 1}'

    problems = uploads.refusal(too_deep + b"\n" + control).report.problems

    assert [(problem.line, problem.field) for problem in problems] == [(1, "a\\ud800"), (2, "\\u0000\\udfff")]


def test_a_csv_prompt_cell_or_message_with_a_control_character_is_refused_naming_row_and_field(
    uploads: Uploads,
) -> None:
    chat = json.dumps([{"role": "user", "content": "a\x00"}]).replace('"', '""')
    data = f'id,prompt,messages\na,fine,\nb,"bell\x07",\nc,,"{chat}"\n'.encode()

    problems = uploads.problems(data, "a.csv")

    assert [problem.split(";")[0] for problem in problems] == [
        'row 3: field "prompt" holds a control character (U+0007 at character 5)',
        'row 4: field "messages[0].content" holds a control character (U+0000 at character 2)',
    ]


def test_a_csv_header_naming_a_column_with_a_control_character_is_refused_at_row_1(uploads: Uploads) -> None:
    problems = uploads.problems(b"prompt,no\x01te\nhi,there\n", "a.csv")

    assert problems == [
        f'row 1: field "no\\u0001te" holds a control character in its name (U+0001 at character 3); {NAME_RULE}'
    ]


def test_a_parquet_prompt_or_column_name_with_a_control_character_is_refused_naming_row_and_field(
    uploads: Uploads,
) -> None:
    prompts = parquet(pa.table({"prompt": ["fine", "nul\x00"]}))
    columns = parquet(pa.table({"prompt": ["fine"], "no\x00te": ["x"]}))

    assert uploads.problems(prompts, "a.parquet")[0].startswith(
        'row 2: field "prompt" holds a control character (U+0000 at character 4)'
    )
    assert uploads.problems(columns, "a.parquet")[0].startswith(
        'row 1: field "no\\u0000te" holds a control character in its name (U+0000 at character 3)'
    )


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("depth", [64, 900])
def test_a_field_nested_deeper_than_64_levels_is_refused_naming_it(uploads: Uploads, depth: int) -> None:
    # 900 levels used to be stored, then could not be read back from a deeper stack (RecursionError).
    line = f'{{"prompt": "x", "tags": {nested(depth)}}}'

    [problem] = uploads.refusal(jsonl({"prompt": "fine"}) + b"\n" + line.encode()).report.problems

    assert (problem.line, problem.field) == (2, "tags")
    assert problem.reason == "nests lists and objects more than 64 levels deep (the record itself is one); flatten it"


def test_no_depth_of_nesting_escapes_as_an_exception_in_a_worker_thread(uploads: Uploads) -> None:
    # The service parses in a worker thread (a shallow stack). Some depths just under what the JSON
    # decoder refuses were decoded, then overflowed the stack when the stored line was encoded: an
    # unhandled RecursionError, a 500 at the gateway. Where that band lies depends on the stack.
    def outcome(depth: int) -> str:
        try:
            uploads.check(f'{{"prompt": "x", "tags": {nested(depth)}}}'.encode())
        except InvalidDataset as refusal:
            [problem] = refusal.report.problems
            return "refused: too deep" if problem.field == "tags" else f"refused: {problem.reason[:14]}"
        except RecursionError:
            return f"RecursionError at depth {depth}"
        return f"accepted at depth {depth}"

    with ThreadPoolExecutor(1) as thread:
        outcomes = set(thread.map(outcome, range(900, 1010)))

    assert outcomes <= {"refused: too deep", "refused: not valid JSON"}


def test_nesting_up_to_64_levels_with_the_record_is_kept(uploads: Uploads) -> None:
    line = f'{{"prompt": "x", "tags": {nested(63)}, "many": [{", ".join(["{}"] * 100)}]}}'

    [record] = uploads.records(line.encode())

    assert json.loads(record.metadata_json)["tags"] == json.loads(nested(63))


def test_a_batch_body_nested_too_deep_is_named(uploads: Uploads) -> None:
    body = f'{{"prompt": "x", "extra": {nested(70)}}}'
    line = f'{{"custom_id": "a", "method": "POST", "url": "/v1/completions", "body": {body}}}'

    [problem] = uploads.refusal(line.encode()).report.problems

    assert (problem.line, problem.field) == (1, "body")
