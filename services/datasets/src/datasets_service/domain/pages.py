"""A dataset's records are stored in pages: objects of at most a thousand records or so (about
2 MiB), so that a reader fetches only the pages it needs and nothing holds a whole dataset."""

import hashlib
from collections.abc import Generator, Iterable
from dataclasses import dataclass

from datasets_service.domain.names import page_object_name
from datasets_service.domain.records import Record, decode_line, decode_page
from datasets_service.domain.validation import Invalid, from_json_line

BOM = b"\xef\xbb\xbf"
PAGE_BYTES = 2 * 2**20  # a page closes before it would grow past this (a larger record goes alone)


@dataclass(frozen=True, slots=True)
class PageInfo:
    """Where a page of records is stored and what it must hash to.

    legacy: the page is a whole JSONL file as uploaded before pages existed (parsed as uploaded).
    """

    number: int
    first_index: int
    record_count: int
    object_name: str
    sha256: str
    size_bytes: int
    legacy: bool = False

    @property
    def end_index(self) -> int:
        return self.first_index + self.record_count


@dataclass(frozen=True, slots=True)
class Page:
    info: PageInfo
    data: bytes


def paginate(
    lines: Iterable[bytes], dataset_id: str, max_records: int, max_bytes: int = PAGE_BYTES
) -> Generator[Page, None, None]:
    """Groups stored record lines, in order, into the dataset's pages."""
    number = first_index = 0
    parts: list[bytes] = []
    size = 0
    for line in lines:
        if parts and (len(parts) == max_records or size + len(line) > max_bytes):
            yield _page(dataset_id, number, first_index, parts)
            number, first_index, parts, size = number + 1, first_index + len(parts), [], 0
        parts.append(line)
        size += len(line)
    if parts:
        yield _page(dataset_id, number, first_index, parts)


def _page(dataset_id: str, number: int, first_index: int, lines: list[bytes]) -> Page:
    data = b"".join(lines)
    name = page_object_name(dataset_id, number)
    info = PageInfo(number, first_index, len(lines), name, hashlib.sha256(data).hexdigest(), len(data))
    return Page(info, data)


def page_records(info: PageInfo, data: bytes) -> tuple[Record, ...]:
    """The records of a stored page (its bytes already checked against its sha256).

    Raises ValueError when the page does not hold the records it should.
    """
    try:
        records = _legacy_records(data) if info.legacy else decode_page(data, info.first_index)
    except (KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"a stored record is malformed ({error!r})") from None
    if len(records) != info.record_count:
        raise ValueError(f"it holds {len(records)} records instead of {info.record_count}")
    return records


def _legacy_records(data: bytes) -> tuple[Record, ...]:
    """A whole JSONL file stored before pages existed, read as it was validated at its upload."""
    if data.startswith(BOM):
        data = data[len(BOM) :]
    records: list[Record] = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            valid = from_json_line(raw, number)
        except Invalid as invalid:
            raise ValueError(f"line {number}: {invalid.reason}") from None
        records.append(decode_line(valid.line, len(records)))
    return tuple(records)
