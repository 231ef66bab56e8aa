"""CSV and Parquet uploads: the same records as JSONL (id, prompt or messages, the other columns as
metadata), bad rows named by the row number a spreadsheet shows; the format by extension or content."""

import datetime
import decimal
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datasets_service.domain.errors import InvalidInput
from datasets_service.domain.records import ChatMessage, Record
from datasets_service.domain.upload import Limits
from tests.unit.datasets.checking import Uploads
from workbench.datasets.v1.datasets_pb2 import RecordFormat

CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]


def parquet(table: pa.Table, row_group_size: int | None = None) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=row_group_size)
    return sink.getvalue()


# ---- CSV ----


def test_csv_rows_become_records_and_other_columns_metadata(uploads: Uploads) -> None:
    data = (
        b"id,prompt,name,years\r\n"
        b'c1,"Say ""hi""",Ada,12\r\n'
        b",Tell me,,\r\n"
        b'c3,"A prompt\non two lines, with a comma",Bob,3\r\n'
    )

    checked, records = uploads.check(data, "candidates.csv")

    assert (checked.format, checked.record_count, checked.report.line_word) == (
        RecordFormat.RECORD_FORMAT_CSV,
        3,
        "row",
    )
    assert [(r.record_id, r.index, r.prompt) for r in records] == [
        ("c1", 0, 'Say "hi"'),
        ("row-3", 1, "Tell me"),
        ("c3", 2, "A prompt\non two lines, with a comma"),
    ]
    assert [json.loads(r.metadata_json) for r in records] == [
        {"name": "Ada", "years": "12"},
        {"name": "", "years": ""},
        {"name": "Bob", "years": "3"},
    ]


def test_a_csv_messages_column_holds_json_and_ids_are_kept_exactly(uploads: Uploads) -> None:
    cell = json.dumps(CHAT).replace('"', '""')
    data = f'Messages,ID\n"{cell}", a/ b \n"{cell}",日本/%2F\n'.encode()

    records = uploads.records(data, "chat.CSV")

    assert [r.record_id for r in records] == [" a/ b ", "日本/%2F"]
    assert records[0].messages == (ChatMessage("system", "Be brief."), ChatMessage("user", "Hi"))


def test_a_csv_with_a_byte_order_mark_and_blank_rows_numbers_rows_as_a_spreadsheet(uploads: Uploads) -> None:
    data = b'\xef\xbb\xbfprompt,note\n"first\nstill first",x\n\n,\n"fifth",\n'

    records = uploads.records(data, "a.csv")

    assert [(r.record_id, r.prompt) for r in records] == [("row-2", "first\nstill first"), ("row-5", "fifth")]


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ("b,,", 'row 3: field "prompt" is empty; give every row a prompt'),
        ('a,"hello","[1]"', 'row 3: has both "prompt" and "messages"; keep one of them'),
        ('a,,"not json"', 'row 3: field "messages" must be a JSON list of {"role", "content"} objects (not valid JSON'),
        ('a,,"[""hi""]"', 'row 3: field "messages[0]" must be an object with role and content (found a string)'),
        ('a,,"[{""role"": ""bot"", ""content"": ""x""}]"', 'row 3: field "messages[0].role" must be one of system'),
        ('"a\x00",hi,', 'row 3: field "id" holds a control character (U+0000 at character 2)'),
        (f"{'x' * 257},hi,", 'row 3: field "id" is 257 bytes long in UTF-8, over the limit of 256'),
        ("b,hi,,extra", "row 3: has 4 cells but the header row names 3 columns; name every column in the first row"),
        ("a,again,", 'row 3: field "id" repeats the record id "a" of row 2; record ids must be unique'),
    ],
)
def test_each_kind_of_bad_csv_row_names_its_row_field_and_reason(uploads: Uploads, row: str, expected: str) -> None:
    data = f"id,prompt,messages\na,fine,\n{row}\n".encode()

    problems = uploads.problems(data, "a.csv")

    assert len(problems) == 1
    assert problems[0].startswith(expected)


def test_trailing_empty_cells_past_the_header_are_ignored(uploads: Uploads) -> None:
    assert [r.prompt for r in uploads.records(b"prompt\nhi,,\n", "a.csv")] == ["hi"]


def test_a_csv_row_that_is_not_utf8_is_named(uploads: Uploads) -> None:
    assert uploads.problems(b"prompt\nok\ncaf\xe9\n", "a.csv") == [
        "row 3: is not valid UTF-8 (byte 0xe9); save the file as UTF-8"
    ]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("id,text", 'row 1: has no "prompt" or "messages" column; the first row names the columns'),
        ("prompt,name,Name,name", 'row 1: names the column "name" twice; give every column its own name'),
        ("prompt,PROMPT", 'row 1: names the column "prompt" twice'),
    ],
)
def test_a_csv_header_without_an_input_column_or_with_a_repeated_one_is_refused(
    uploads: Uploads, header: str, expected: str
) -> None:
    refusal = uploads.refusal(f"{header}\nhi,there\n".encode(), "a.csv")

    assert str(refusal).startswith(expected)
    assert str(refusal).endswith("the file cannot be read past row 1; nothing was registered")


def test_a_csv_quote_that_never_closes_stops_at_the_row_limit_and_is_refused_even_when_skipping(
    uploads: Uploads,
) -> None:
    data = b'prompt\nfine\n"opened and never closed\n' + b"more text,\n" * 1000

    with pytest.raises(InvalidInput) as caught:
        uploads.check(data, "a.csv", skip_invalid=True, limits=Limits(max_line_bytes=2000))

    assert str(caught.value).startswith(
        "row 3: is longer than 2000 bytes (0.0 MiB), the limit of one row; shorten the record, "
        "or raise WB_DATASETS_MAX_LINE_BYTES"
    )
    assert "cannot be read past row 3" in str(caught.value)


# ---- Parquet ----


def test_parquet_rows_become_records_with_messages_as_json_or_as_a_list(uploads: Uploads) -> None:
    structs = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
    table = pa.table(
        {
            "id": pa.array([1, 2, None], pa.int64()),
            "messages": pa.array([CHAT, [{"role": "user", "content": "Two"}], None], structs),
            "prompt": pa.array([None, None, "Three"]),
            "score": pa.array([0.5, None, float("nan")]),
        }
    )

    checked, records = uploads.check(parquet(table), "data.parquet")

    assert (checked.format, checked.report.line_word) == (RecordFormat.RECORD_FORMAT_PARQUET, "row")
    assert records == [
        Record(
            "1",
            0,
            messages=(ChatMessage("system", "Be brief."), ChatMessage("user", "Hi")),
            metadata_json='{"score":0.5}',
        ),
        Record("2", 1, messages=(ChatMessage("user", "Two"),), metadata_json='{"score":null}'),
        Record("row-3", 2, prompt="Three", metadata_json='{"score":null}'),
    ]


def test_parquet_messages_may_be_json_text_and_metadata_is_made_json_safe(uploads: Uploads) -> None:
    when = datetime.datetime(2026, 11, 27, 14, 0, tzinfo=datetime.UTC)
    table = pa.table(
        {
            "ID": ["a/"],
            "Messages": [json.dumps(CHAT)],
            "at": pa.array([when], pa.timestamp("us", tz="UTC")),
            "day": [datetime.date(2026, 1, 2)],
            "price": pa.array([decimal.Decimal("1.20")], pa.decimal128(5, 2)),
            "raw": [b"\xff\x00"],
            "text": [b"plain"],
            "tags": [["x", "y"]],
            "props": pa.array([[("k", 1)]], pa.map_(pa.string(), pa.int64())),
        }
    )

    [record] = uploads.records(parquet(table), "x.pq")

    assert (record.record_id, len(record.messages)) == ("a/", 2)
    assert json.loads(record.metadata_json) == {
        "at": "2026-11-27T14:00:00+00:00",
        "day": "2026-01-02",
        "price": "1.20",
        "raw": "/wA=",
        "text": "plain",
        "tags": ["x", "y"],
        "props": [["k", 1]],
    }


def test_a_parquet_file_is_read_batch_by_batch_in_order(uploads: Uploads) -> None:
    table = pa.table({"prompt": [f"p{n}" for n in range(1000)]})

    records = uploads.records(parquet(table, row_group_size=100), "big.parquet")

    assert [(r.record_id, r.prompt) for r in records[::250]] == [
        ("row-1", "p0"),
        ("row-251", "p250"),
        ("row-501", "p500"),
        ("row-751", "p750"),
    ]
    assert len(records) == 1000


CHAT_JSON = json.dumps(CHAT)


@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        (
            {"messages": [CHAT_JSON, None], "prompt": pa.array([None, 1], pa.int64())},
            'row 2: field "prompt" must be a non-empty string (found a number)',
        ),
        ({"prompt": ["fine", ""]}, 'row 2: field "prompt" is empty; give every row a prompt'),
        (
            {"prompt": ["x", "y"], "id": [None, True]},
            'row 2: field "id" must be a non-empty string or an integer (found a boolean)',
        ),
        (
            {"prompt": ["x", "y"], "id": [None, 1.5]},
            'row 2: field "id" must be a non-empty string or an integer (found a number)',
        ),
        ({"messages": [CHAT_JSON, json.dumps([{"role": "user"}])]}, 'row 2: field "messages[0].content" must be a'),
        ({"messages": [CHAT_JSON, "[oops"]}, 'row 2: field "messages" must be a JSON list of {"role", "content"}'),
        ({"prompt": ["x", "y"], "id": ["ok", "tab\t"]}, 'row 2: field "id" holds a control character (U+0009'),
        ({"prompt": ["x", "y"], "id": [5, 5]}, 'row 2: field "id" repeats the record id "5" of row 1'),
    ],
)
def test_each_kind_of_bad_parquet_row_names_its_row_field_and_reason(
    uploads: Uploads, columns: dict[str, object], expected: str
) -> None:
    problems = uploads.problems(parquet(pa.table(columns)), "a.parquet")

    assert len(problems) == 1
    assert problems[0].startswith(expected)


def test_a_file_that_is_not_parquet_or_has_no_input_column_is_refused(uploads: Uploads) -> None:
    with pytest.raises(InvalidInput, match="the file is not a readable Parquet file"):
        uploads.check(b"PAR1 but nothing else", "a.parquet")
    with pytest.raises(InvalidInput, match=r'needs one "prompt" or "messages" column.*\(its columns: text\)'):
        uploads.check(parquet(pa.table({"text": ["x"]})), "a.parquet")


# ---- which format ----


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        ("upload", b'\xef\xbb\xbf\n{"prompt": "x"}\n', RecordFormat.RECORD_FORMAT_PROMPT),
        ("upload", b"prompt\nx\n", RecordFormat.RECORD_FORMAT_CSV),
        ("", b"id,prompt\n1,x\n", RecordFormat.RECORD_FORMAT_CSV),
        ("upload.txt", parquet(pa.table({"prompt": ["x"]})), RecordFormat.RECORD_FORMAT_PARQUET),
        ("data.NDJSON", b'{"prompt": "x"}\n', RecordFormat.RECORD_FORMAT_PROMPT),
        ("data.json", b'{"prompt": "x"}\n', RecordFormat.RECORD_FORMAT_PROMPT),
    ],
)
def test_the_format_comes_from_the_extension_or_else_the_content(
    uploads: Uploads, name: str, data: bytes, expected: int
) -> None:
    checked, _ = uploads.check(data, name)

    assert checked.format == expected


def test_the_extension_wins_over_the_content(uploads: Uploads) -> None:
    assert uploads.problems(b'{"prompt": "x"}\n', "looks.csv")[0].startswith('row 1: has no "prompt" or "messages"')
    assert uploads.problems(b"prompt\nx\n", "looks.jsonl")[0] == "line 1: not valid JSON (Expecting value at column 1)"
