"""The kinds of file a dataset can be uploaded as, and how each numbers and names its records."""

import re
from enum import Enum

from workbench.datasets.v1.datasets_pb2 import RecordFormat


class FileKind(Enum):
    """JSONL (one JSON object per line), CSV (a header row, then one row per record) or Parquet."""

    JSONL = "jsonl"
    CSV = "csv"
    PARQUET = "parquet"

    @property
    def line_word(self) -> str:
        """How the user's tools number its records: a JSONL line, a spreadsheet's or a table's row."""
        return "line" if self is FileKind.JSONL else "row"

    @property
    def record_format(self) -> "RecordFormat.ValueType | None":
        """The format of every dataset of this kind (None for JSONL: its lines' shapes decide)."""
        return _RECORD_FORMAT[self]

    def generated_id(self, number: int) -> str:
        """The id of a record that names none: its line or row number."""
        return f"{self.line_word}-{number}"

    def generated_number(self, record_id: str) -> int | None:
        """The number in an id that looks generated ("line-7" in a JSONL file), else None."""
        match = re.fullmatch(rf"{self.line_word}-([1-9][0-9]*)", record_id)
        return int(match[1]) if match else None


_RECORD_FORMAT = {
    FileKind.JSONL: None,
    FileKind.CSV: RecordFormat.RECORD_FORMAT_CSV,
    FileKind.PARQUET: RecordFormat.RECORD_FORMAT_PARQUET,
}
_BY_EXTENSION = {
    "jsonl": FileKind.JSONL,
    "ndjson": FileKind.JSONL,
    "json": FileKind.JSONL,
    "csv": FileKind.CSV,
    "parquet": FileKind.PARQUET,
    "pq": FileKind.PARQUET,
}


def kind_from_name(name: str) -> FileKind | None:
    """The kind the file name's extension names, or None when it names none (then the content tells)."""
    base = re.split(r"[/\\]", name)[-1].strip()
    stem, dot, extension = base.rpartition(".")
    return _BY_EXTENSION.get(extension.lower()) if dot and stem else None
