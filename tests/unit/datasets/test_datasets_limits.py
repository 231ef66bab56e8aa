"""The limits on one upload: a line or row's size, the number of records (the file's size is the
spool's, in test_datasets_application.py); each refusal names the limit and its variable."""

import io
import json
import os
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datasets_service.adapters.spool import ensure_spool_dir
from datasets_service.domain.errors import TooManyRecords
from datasets_service.domain.upload import Limits
from tests.unit.datasets.checking import Uploads

TOO_LONG = (
    "is longer than 100 bytes (0.0 MiB), the limit of one {}; shorten the record, or raise WB_DATASETS_MAX_LINE_BYTES"
)


def test_a_jsonl_line_over_the_limit_is_named_and_the_lines_after_it_still_read(uploads: Uploads) -> None:
    long_line = json.dumps({"prompt": "x" * 200}).encode()
    data = b'{"prompt": "a"}\n' + long_line + b"\n" + b'{"prompt": "c"}\n' + long_line

    checked, records = uploads.check(data, skip_invalid=True, limits=Limits(max_line_bytes=100))

    assert [str(problem) for problem in checked.report.problems] == [
        f"line 2: {TOO_LONG.format('line')}",
        f"line 4: {TOO_LONG.format('line')}",
    ]
    assert [(record.record_id, record.prompt) for record in records] == [("line-1", "a"), ("line-3", "c")]


def test_a_line_of_exactly_the_limit_is_accepted_with_either_line_end(uploads: Uploads) -> None:
    line = json.dumps({"prompt": "y" * 86}).encode()
    assert len(line) == 100

    records = uploads.records(line + b"\r\n" + line.replace(b"y", b"z") + b"\n" + line.replace(b"y", b"w"))

    assert [record.prompt for record in records] == ["y" * 86, "z" * 86, "w" * 86]


def test_a_first_line_over_the_limit_after_a_byte_order_mark_is_refused_whole(uploads: Uploads) -> None:
    # Found by tests/fuzz: the limit was checked after the mark was cut off, so the first line's
    # first 99 bytes passed for a whole line, and its tail was read as line 2 (here, a record).
    data = b"\xef\xbb\xbf" + b"x" * 99 + b'{"prompt": "smuggled"}\n{"prompt": "real"}\n'

    checked, records = uploads.check(data, skip_invalid=True, limits=Limits(max_line_bytes=100))

    assert [str(problem) for problem in checked.report.problems] == [f"line 1: {TOO_LONG.format('line')}"]
    assert [(record.record_id, record.prompt) for record in records] == [("line-2", "real")]


def test_a_first_line_of_exactly_the_limit_after_a_byte_order_mark_is_accepted(uploads: Uploads) -> None:
    line = b'{"prompt": "' + b"y" * 60 + b'"' + b" " * 26 + b"}"  # stored without the spaces: under the limit too
    assert len(line) == 100

    records = uploads.check(b"\xef\xbb\xbf" + line + b"\n" + line, limits=Limits(max_line_bytes=100))[1]

    assert [record.prompt for record in records] == ["y" * 60, "y" * 60]


def test_a_csv_row_over_the_limit_is_refused(uploads: Uploads) -> None:
    data = b"prompt\nshort\n" + b"x" * 300 + b"\nafter\n"

    assert uploads.problems(data, "a.csv", limits=Limits(max_line_bytes=100)) == [f"row 3: {TOO_LONG.format('row')}"]


def test_a_parquet_record_over_the_limit_is_refused(uploads: Uploads) -> None:
    sink = io.BytesIO()
    pq.write_table(pa.table({"prompt": ["short", "x" * 300]}), sink)

    assert uploads.problems(sink.getvalue(), "a.parquet", limits=Limits(max_line_bytes=100)) == [
        f"row 2: {TOO_LONG.format('row')}"
    ]


@pytest.mark.parametrize("skip_invalid", [False, True])
def test_more_records_than_the_limit_are_refused_naming_the_variable(uploads: Uploads, skip_invalid: bool) -> None:
    data = b'{"prompt": "x"}\n' * 4

    uploads.check(data[: 3 * 16], limits=Limits(max_records=3))
    with pytest.raises(TooManyRecords) as caught:
        uploads.check(data, skip_invalid=skip_invalid, limits=Limits(max_records=3))

    assert str(caught.value) == (
        "the file holds more than 3 records, the limit of one dataset; split it into smaller files, "
        "or raise WB_DATASETS_MAX_RECORDS"
    )


def test_invalid_records_count_towards_the_record_limit_and_blank_lines_do_not(uploads: Uploads) -> None:
    with pytest.raises(TooManyRecords):
        uploads.check(b'{"prompt": "x"}\nbad\nbad\n', skip_invalid=True, limits=Limits(max_records=2))
    assert len(uploads.records(b'{"prompt": "x"}\n\n\n\n{"prompt": "y"}\n', "a.jsonl")) == 2


def test_spool_files_a_crash_left_behind_are_removed_at_start_and_fresh_ones_kept(tmp_path: Path) -> None:
    stale, fresh, other = tmp_path / "wb-upload-a.spool", tmp_path / "wb-upload-b.spool", tmp_path / "notes.spool"
    for path in (stale, fresh, other):
        path.write_bytes(b"x")
    hours_ago = time.time() - 3 * 3600
    os.utime(stale, (hours_ago, hours_ago))
    os.utime(other, (hours_ago, hours_ago))

    ensure_spool_dir(str(tmp_path))

    assert (stale.exists(), fresh.exists(), other.exists()) == (False, True, True)


def test_a_csv_first_row_over_the_limit_is_refused_after_a_byte_order_mark(uploads: Uploads) -> None:
    data = b"\xef\xbb\xbf" + b"p" * 300 + b"\nshort\n"

    assert uploads.problems(data, "a.csv", limits=Limits(max_line_bytes=100)) == [f"row 1: {TOO_LONG.format('row')}"]
