"""Checking an uploaded file as the service does, without the service: the file's reader
(adapters/file_readers.py) feeding the domain's UploadCheck, on a file in the test's folder."""

from pathlib import Path

import pytest

from datasets_service.adapters.file_readers import detect_kind, read_records
from datasets_service.domain.errors import InvalidDataset
from datasets_service.domain.records import Record, decode_line
from datasets_service.domain.upload import CheckedFile, Limits, UploadCheck


class Uploads:
    """Writes files in a folder and checks them."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.count = 0

    def check(
        self, data: bytes, name: str = "data.jsonl", skip_invalid: bool = False, limits: Limits | None = None
    ) -> tuple[CheckedFile, list[Record]]:
        """The verdict on the file and the records it would register, in order."""
        limits = limits or Limits()
        self.count += 1
        path = self.folder / f"upload-{self.count}"
        path.write_bytes(data)
        kind = detect_kind(path, name, limits.max_line_bytes)
        check = UploadCheck(kind, limits, skip_invalid)
        lines = list(check.kept_lines(read_records(path, kind, limits.max_line_bytes)))
        checked = check.finish()
        return checked, [decode_line(line, index) for index, line in enumerate(lines)]

    def records(self, data: bytes, name: str = "data.jsonl") -> list[Record]:
        return self.check(data, name)[1]

    def refusal(self, data: bytes, name: str = "data.jsonl", limits: Limits | None = None) -> InvalidDataset:
        with pytest.raises(InvalidDataset) as caught:
            self.check(data, name, limits=limits)
        return caught.value

    def problems(self, data: bytes, name: str = "data.jsonl", limits: Limits | None = None) -> list[str]:
        """Each problem the strict check refuses the file for, as its message shows it."""
        return [str(problem) for problem in self.refusal(data, name, limits).report.problems]
