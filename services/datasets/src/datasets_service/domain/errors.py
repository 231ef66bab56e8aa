"""Errors of the datasets context: the shared kinds (servicehost.errors) and this context's own."""

from collections.abc import Sequence
from dataclasses import dataclass

from servicehost.errors import Conflict, DataLoss, InvalidInput, NotFound

__all__ = [
    "Conflict",
    "InvalidDataset",
    "InvalidInput",
    "LineError",
    "NotFound",
    "StoredFileUnreadable",
    "UploadTooLarge",
]


class StoredFileUnreadable(DataLoss):
    """A registered dataset's stored file is missing or does not match its sha256."""


@dataclass(frozen=True, slots=True)
class LineError:
    """One problem in an uploaded file: where (line, field) and what is wrong."""

    line: int
    reason: str
    field: str | None = None

    def __str__(self) -> str:
        where = f'field "{self.field}" ' if self.field else ""
        return f"line {self.line}: {where}{self.reason}"


class InvalidDataset(InvalidInput):
    """An uploaded file is not valid JSONL records; holds the first errors found, in line order."""

    def __init__(self, errors: Sequence[LineError], truncated: bool = False) -> None:
        self.errors = tuple(errors)
        self.truncated = truncated
        more = f"\n(stopped after {len(self.errors)} errors)" if truncated else ""
        super().__init__("\n".join(str(error) for error in self.errors) + more)


class UploadTooLarge(InvalidInput):
    """An upload went past the configured size limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"the file is larger than the upload limit of {limit} bytes ({limit / 2**20:.1f} MiB); "
            "split it into smaller files, or raise WB_MAX_UPLOAD_BYTES"
        )
        self.limit = limit
