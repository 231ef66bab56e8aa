"""Records are stored in pages: cut by count or by size, numbered, hashed, read back in order; a
dataset stored before pages existed is one page read as it was uploaded."""

import hashlib

import pytest

from datasets_service.domain.pages import PageInfo, page_records, paginate
from datasets_service.domain.records import ChatMessage, Record, Sampling, normalized_line


def line(n: int, size: int = 0) -> bytes:
    return normalized_line(f"r{n}", "p" + "x" * size, (), {"n": n}, Sampling())


def test_pages_close_at_the_record_count_and_are_named_hashed_and_numbered() -> None:
    pages = list(paginate((line(n) for n in range(7)), "ds_0123456789ab", max_records=3))

    assert [(p.info.number, p.info.first_index, p.info.record_count) for p in pages] == [
        (0, 0, 3),
        (1, 3, 3),
        (2, 6, 1),
    ]
    assert [p.info.object_name for p in pages] == [
        "ds_0123456789ab.p00000",
        "ds_0123456789ab.p00001",
        "ds_0123456789ab.p00002",
    ]
    assert all(p.info.sha256 == hashlib.sha256(p.data).hexdigest() and p.info.size_bytes == len(p.data) for p in pages)
    assert b"".join(p.data for p in pages) == b"".join(line(n) for n in range(7))


def test_pages_close_before_they_grow_past_the_byte_budget_and_a_large_record_goes_alone() -> None:
    lines = [line(0, 40), line(1, 40), line(2, 500), line(3, 10)]

    pages = list(paginate(lines, "ds_0123456789ab", max_records=1000, max_bytes=200))

    assert [p.info.record_count for p in pages] == [2, 1, 1]


def test_a_page_reads_back_as_records_numbered_from_its_first_index() -> None:
    data = normalized_line("a/", None, (ChatMessage("user", "Hi"),), {}, Sampling(temperature=0.5, max_tokens=3))
    data += normalized_line("b", "Say b", (), {"name": "Ada"}, Sampling())
    info = PageInfo(4, 40, 2, "ds_x.p00004", "", len(data))

    assert page_records(info, data) == (
        Record("a/", 40, messages=(ChatMessage("user", "Hi"),), sampling=Sampling(temperature=0.5, max_tokens=3)),
        Record("b", 41, prompt="Say b", metadata_json='{"name":"Ada"}'),
    )


def test_a_page_that_does_not_hold_what_it_should_is_an_error() -> None:
    data = line(1) + line(2)

    with pytest.raises(ValueError, match="holds 2 records instead of 3"):
        page_records(PageInfo(0, 0, 3, "x", "", len(data)), data)
    with pytest.raises(ValueError, match="malformed"):
        page_records(PageInfo(0, 0, 1, "x", "", 9), b'{"no": 1}\n')


def test_a_legacy_file_is_one_page_read_as_it_was_uploaded() -> None:
    data = (
        b'\xef\xbb\xbf{"id": "a", "prompt": "Say a", "extra": 1}\n\n{"messages": [{"role": "user", "content": "Hi"}]}\n'
    )

    records = page_records(PageInfo(0, 0, 2, "ds_x.jsonl", "", len(data), legacy=True), data)

    assert records == (
        Record("a", 0, prompt="Say a", metadata_json='{"extra":1}'),
        Record("line-3", 1, messages=(ChatMessage("user", "Hi"),)),
    )
