"""Reading an uploaded file, streaming, one record at a time: JSONL lines, CSV rows, Parquet rows.

Each reader hands over (line or row number, raw record) pairs for the domain to validate
(domain/upload.py), holding one line or row (a Parquet batch of rows) at a time. A line or row
that cannot even be read (too long, not UTF-8) is handed over as Unreadable with its reason; one
the reader cannot read past ends the file there.
"""

import base64
import csv
import math
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import IO

from datasets_service.domain.errors import InvalidInput
from datasets_service.domain.formats import FileKind, kind_from_name
from datasets_service.domain.upload import too_long
from datasets_service.domain.validation import ROW_COLUMNS, RawRecord, Unreadable, name_problem, show

BOM = b"\xef\xbb\xbf"
READ_BUFFER = 1 << 20
PARQUET_BATCH_ROWS = 256


def detect_kind(path: Path, name: str, max_line_bytes: int) -> FileKind:
    """The file's kind: the name's extension says, else the content (Parquet's magic bytes, a first
    line that opens a JSON object, else CSV)."""
    named = kind_from_name(name)
    if named is not None:
        return named
    with open(path, "rb") as file:
        if file.read(4) == b"PAR1":
            return FileKind.PARQUET
        file.seek(0)
        line = file.readline(max_line_bytes + 2).removeprefix(BOM)
        while line and not line.strip():
            line = file.readline(max_line_bytes + 2)
    # An empty file is JSONL's to refuse; a broken first JSON line is still told as a JSON line.
    return FileKind.JSONL if not line.strip() or line.lstrip().startswith(b"{") else FileKind.CSV


def read_records(path: Path, kind: FileKind, max_line_bytes: int) -> Iterator[tuple[int, RawRecord]]:
    """The file's raw records in order, each with its line (JSONL) or row (CSV, Parquet) number."""
    if kind is FileKind.JSONL:
        return _jsonl(path, max_line_bytes)
    if kind is FileKind.CSV:
        return _csv(path, max_line_bytes)
    return _parquet(path)


def _jsonl(path: Path, limit: int) -> Iterator[tuple[int, RawRecord]]:
    with open(path, "rb", buffering=READ_BUFFER) as file:
        # Off before the first read: cut off after it, the mark made a first line over the limit
        # look whole (its tail then read as the next line) and one of exactly the limit look cut.
        if file.read(len(BOM)) != BOM:
            file.seek(0)
        number = 0
        while line := file.readline(limit + 2):
            number += 1
            complete = line.endswith(b"\n")
            if not complete and len(line) >= limit + 2:  # cut off: the line goes on
                _skip_line(file)
                yield number, Unreadable(too_long(limit, "line"))
                continue
            content = line.removesuffix(b"\n").removesuffix(b"\r")
            if len(content) > limit:
                yield number, Unreadable(too_long(limit, "line"))
            elif content.strip():
                yield number, content


def _skip_line(file: IO[bytes]) -> None:
    while chunk := file.readline(READ_BUFFER):
        if chunk.endswith(b"\n"):
            return


class _RowTooLong(Exception):
    pass


class _CsvLines:
    """The file's lines for csv.reader, decoded, each row's bytes counted against the limit.

    Reading lines ourselves (not the text layer's iterator) bounds what one read can take: a file
    without a newline, or a quote that never closes, stops at the limit instead of at the end.
    """

    def __init__(self, file: IO[bytes], limit: int) -> None:
        self.file = file
        self.limit = limit
        self.started = False
        self.row_bytes = 0
        self.bad_byte: int | None = None  # the first byte of this row that is not UTF-8

    def start_row(self) -> None:
        self.row_bytes = 0
        self.bad_byte = None

    def __iter__(self) -> "_CsvLines":
        return self

    def __next__(self) -> str:
        line = self.file.readline(self.limit + 2)
        if not line:
            raise StopIteration
        cut = len(line) == self.limit + 2 and not line.endswith(b"\n")  # readline stopped, not the line
        if not self.started:
            self.started, line = True, line.removeprefix(BOM)
        self.row_bytes += len(line)
        if cut or self.row_bytes > self.limit + 2:  # a line end may follow the limit
            raise _RowTooLong
        try:
            return line.decode("utf-8")
        except UnicodeDecodeError as error:
            if self.bad_byte is None:
                self.bad_byte = line[error.start]
            return line.decode("utf-8", "replace")


def _csv(path: Path, limit: int) -> Iterator[tuple[int, RawRecord]]:
    # Process-wide: only ever raised (a record's size is checked per row by _CsvLines), so another
    # reader of CSV in the same process never finds it lowered under it.
    csv.field_size_limit(max(csv.field_size_limit(), limit))
    with open(path, "rb", buffering=READ_BUFFER) as file:
        lines = _CsvLines(file, limit)
        reader = csv.reader(lines)
        columns: list[str] | None = None
        number = 0
        while True:
            lines.start_row()
            try:
                cells = next(reader)
            except StopIteration:
                return
            except _RowTooLong:
                yield number + 1, Unreadable(too_long(limit, "row"), fatal=True)
                return
            except csv.Error as error:
                reason = too_long(limit, "row") if "field limit" in str(error) else f"is not valid CSV ({error})"
                yield number + 1, Unreadable(reason, fatal=True)
                return
            number += 1
            if columns is None:
                columns, problem = _header(cells, lines.bad_byte)
                if problem is not None:
                    yield number, problem
                    return
                continue
            if not any(cell.strip() for cell in cells):
                continue  # a blank row (still counted, as a spreadsheet shows it)
            if lines.bad_byte is not None:
                yield number, Unreadable(f"is not valid UTF-8 (byte 0x{lines.bad_byte:02x}); save the file as UTF-8")
            elif len(cells) > len(columns) and any(cell.strip() for cell in cells[len(columns) :]):
                yield (
                    number,
                    Unreadable(
                        f"has {len(cells)} cells but the header row names {len(columns)} columns; "
                        "name every column in the first row"
                    ),
                )
            else:
                yield number, dict(zip(columns, cells + [""] * (len(columns) - len(cells)), strict=False))


def _header(cells: list[str], bad_byte: int | None) -> tuple[list[str], Unreadable | None]:
    """The column names (id, prompt and messages in any case), or why the header row is unusable
    (the file cannot be read past it)."""
    if bad_byte is not None:
        return [], Unreadable(f"is not valid UTF-8 (byte 0x{bad_byte:02x}); save the file as UTF-8", fatal=True)
    columns = []
    for position, cell in enumerate(cells, start=1):
        name = cell.strip()
        columns.append(name.lower() if name.lower() in ROW_COLUMNS else name or f"column {position}")
    repeated = next((name for position, name in enumerate(columns) if name in columns[:position]), None)
    if repeated is not None:
        return [], Unreadable(f"names the column {show(repeated)} twice; give every column its own name", fatal=True)
    if "prompt" not in columns and "messages" not in columns:
        reason = (
            'has no "prompt" or "messages" column; the first row names the columns: id (optional), prompt or '
            'messages (a JSON list of {"role", "content"}), and any others, kept as metadata'
        )
        return [], Unreadable(reason, fatal=True)
    for name in columns:
        problem = name_problem(name)
        if problem is not None:
            return [], Unreadable(problem[1], field=problem[0], fatal=True)
    return columns, None


def _parquet(path: Path) -> Iterator[tuple[int, RawRecord]]:
    # Imported here: only Parquet uploads need pyarrow (and the memory it takes).
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path, buffer_size=READ_BUFFER, pre_buffer=False)
    except (pa.ArrowException, OSError) as error:
        raise InvalidInput(
            f"the file is not a readable Parquet file ({str(error)[:200]}); save it again as Parquet, "
            "or upload JSONL or CSV"
        ) from None
    with parquet:
        columns = [name.lower() if name.lower() in ROW_COLUMNS else name for name in parquet.schema_arrow.names]
        if len(set(columns)) != len(columns) or ("prompt" not in columns and "messages" not in columns):
            raise InvalidInput(
                f'the Parquet file needs one "prompt" or "messages" column, and at most one "id" column '
                f"(its columns: {', '.join(parquet.schema_arrow.names)[:500]})"
            )
        number = 0
        try:
            for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, use_threads=False):
                for row in batch.to_pylist():
                    number += 1
                    values = zip(columns, row.values(), strict=True)
                    yield number, {column: json_safe(value) for column, value in values}
        except (pa.ArrowException, OSError) as error:
            reason = f"cannot be read ({str(error)[:200]}); the Parquet file is damaged"
            yield number + 1, Unreadable(reason, fatal=True)


def json_safe(value: object) -> object:
    """A Parquet value as JSON can hold it: dates and times in ISO 8601, decimals as text, bytes as
    UTF-8 text (else base64), NaN and infinities as null."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(value).decode("ascii")
    if isinstance(value, Decimal):
        return str(value)
    return str(value)
