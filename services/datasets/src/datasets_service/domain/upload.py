"""Checking an upload as a whole, record by record in file order, without holding its records.

UploadCheck validates each record (validation.py), then what only the file as a whole can tell:
ids repeated, a batch file that mixes endpoints, the limits on a record's size and on the record
count. It keeps the first problems and counts the others, and hands over the stored line of each
record to keep: every valid one with skip_invalid, else only while no problem has been found (a
refused file stores nothing worth keeping).
"""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from datasets_service.domain.errors import InvalidDataset, InvalidInput, TooManyRecords
from datasets_service.domain.formats import FileKind
from datasets_service.domain.report import MAX_PROBLEMS, Problem, ValidationReport
from datasets_service.domain.validation import Invalid, RawRecord, Unreadable, Valid, show, validate
from workbench.datasets.v1.datasets_pb2 import RecordFormat

NO_RECORDS_HINT = {
    FileKind.JSONL: "upload a JSONL file with one JSON object per line",
    FileKind.CSV: "a CSV file needs a header row (id, prompt or messages, ...), then one row per record",
    FileKind.PARQUET: "the Parquet file has no rows",
}


@dataclass(frozen=True, slots=True)
class Limits:
    max_records: int = 1_000_000  # WB_DATASETS_MAX_RECORDS
    max_line_bytes: int = 8 * 2**20  # WB_DATASETS_MAX_LINE_BYTES: one JSONL line, one row


def too_long(limit: int, line_word: str) -> str:
    """Why a line or row over the limit is refused, and what to do about it."""
    return (
        f"is longer than {limit} bytes ({limit / 2**20:.1f} MiB), the limit of one {line_word}; "
        "shorten the record, or raise WB_DATASETS_MAX_LINE_BYTES"
    )


@dataclass(frozen=True, slots=True)
class CheckedFile:
    """A file that may be registered: its format, its valid records and what was left out."""

    format: "RecordFormat.ValueType"
    record_count: int
    report: ValidationReport


@dataclass
class UploadCheck:
    kind: FileKind
    limits: Limits
    skip_invalid: bool = False
    records_seen: int = 0  # valid or not
    valid_records: int = 0
    invalid_records: int = 0
    problems: list[Problem] = field(default_factory=list)  # the first MAX_PROBLEMS
    more: int = 0
    stopped_at: int | None = None  # the line the reader could not read past
    _shapes: set["RecordFormat.ValueType"] = field(default_factory=set)
    # Ids seen, for repeats: explicit ids by their first line; generated ones ("line-7") only as a
    # bit per line, so that a file of records without ids costs almost nothing to check.
    _first_line_of: dict[str, int] = field(default_factory=dict)
    _generated: bytearray = field(default_factory=bytearray)
    _batch_url: tuple[str, int] | None = None

    @property
    def keeping(self) -> bool:
        """Whether valid records are still worth storing."""
        return self.skip_invalid or not self.problems

    def kept_lines(self, records: Iterable[tuple[int, RawRecord]]) -> Iterator[bytes]:
        """The stored line of every record to keep, in order, from (line number, raw record) pairs."""
        for number, raw in records:
            line = self.add(number, raw)
            if line is not None:
                yield line
            if self.stopped_at is not None:
                return

    def add(self, number: int, raw: RawRecord) -> bytes | None:
        """Checks one record; its stored line when it is to be kept."""
        if isinstance(raw, Unreadable) and raw.fatal:
            self._problem(number, raw.field, raw.reason)
            self.stopped_at = number
            return None
        self.records_seen += 1
        if self.records_seen > self.limits.max_records:
            raise TooManyRecords(self.limits.max_records)
        try:
            if isinstance(raw, Unreadable):
                raise Invalid(raw.field, raw.reason)
            valid = validate(self.kind, raw, number)
            self._check_in_file(valid, number)
        except Invalid as invalid:
            self.invalid_records += 1
            self._problem(number, invalid.field, invalid.reason)
            return None
        self._remember(valid, number)
        return valid.line if self.keeping else None

    def finish(self) -> CheckedFile:
        """The file's verdict once every record was added: what to register, or why nothing."""
        report = ValidationReport(tuple(self.problems), self.more, self.invalid_records, self.kind.line_word)
        word = self.kind.line_word
        if self.stopped_at is not None:
            stopped = f"the file cannot be read past {word} {self.stopped_at}; nothing was registered"
            raise InvalidDataset(report, stopped)
        if self.problems and not self.skip_invalid:
            raise InvalidDataset(
                report, f"nothing was registered; fix these {word}s, or upload with skip_invalid to keep the valid ones"
            )
        if self.valid_records == 0:
            if self.problems:
                raise InvalidDataset(report, "no record is valid; nothing was registered")
            raise InvalidInput(f"the file holds no records; {NO_RECORDS_HINT[self.kind]}")
        return CheckedFile(self._format(), self.valid_records, report)

    def _format(self) -> "RecordFormat.ValueType":
        if self.kind.record_format is not None:
            return self.kind.record_format
        return next(iter(self._shapes)) if len(self._shapes) == 1 else RecordFormat.RECORD_FORMAT_MIXED

    def _check_in_file(self, valid: Valid, number: int) -> None:
        if len(valid.line) > self.limits.max_line_bytes:
            raise Invalid(None, too_long(self.limits.max_line_bytes, self.kind.line_word))
        if valid.url is not None and self._batch_url is not None and valid.url != self._batch_url[0]:
            url, url_line = self._batch_url
            raise Invalid(
                "url",
                f"is {show(valid.url)} but line {url_line} asks for {show(url)}; a batch file sends all its "
                "requests to one endpoint (as OpenAI's Batch API requires): split the file by url",
            )
        first = self._first_line(valid, number)
        if first is not None:
            raise Invalid(
                valid.id_field,
                f"repeats the record id {show(valid.record_id)} of {self.kind.line_word} {first}; "
                "record ids must be unique",
            )

    def _first_line(self, valid: Valid, number: int) -> int | None:
        """The earlier line whose record has the same id, if any."""
        first = self._first_line_of.get(valid.record_id)
        if first is not None or valid.id_generated:
            return first
        generated = self.kind.generated_number(valid.record_id)
        if generated is not None and generated < number and self._was_generated(generated):
            return generated
        return None

    def _remember(self, valid: Valid, number: int) -> None:
        self.valid_records += 1
        self._shapes.add(valid.shape)
        if valid.url is not None and self._batch_url is None:
            self._batch_url = (valid.url, number)
        if not valid.id_generated:
            self._first_line_of[valid.record_id] = number
            return
        byte = number >> 3
        if byte >= len(self._generated):
            self._generated.extend(bytes(byte + 1 - len(self._generated)))
        self._generated[byte] |= 1 << (number & 7)

    def _was_generated(self, number: int) -> bool:
        byte = number >> 3
        return byte < len(self._generated) and bool(self._generated[byte] & (1 << (number & 7)))

    def _problem(self, number: int, field: str | None, reason: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(number, reason, field, self.kind.line_word))
        else:
            self.more += 1
