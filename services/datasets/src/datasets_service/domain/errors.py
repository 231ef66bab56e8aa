"""Errors of the datasets context: the shared kinds (servicehost.errors) and this context's own."""

from datasets_service.domain.report import ValidationReport
from servicehost.errors import Conflict, DataLoss, InvalidInput, NotFound

__all__ = [
    "Conflict",
    "InvalidDataset",
    "InvalidInput",
    "NotFound",
    "StoredFileUnreadable",
    "TooManyRecords",
    "UploadTooLarge",
]


class StoredFileUnreadable(DataLoss):
    """A registered dataset's stored records are missing or do not match their sha256."""


class InvalidDataset(InvalidInput):
    """An uploaded file holds invalid records: its message lists the first problems in file order
    (and how many more); the report travels in the error's details for clients that want it."""

    def __init__(self, report: ValidationReport, conclusion: str = "") -> None:
        super().__init__("\n".join(part for part in (str(report), conclusion) if part), details=[report.as_message()])
        self.report = report


class LimitExceeded(InvalidInput):
    """An upload went past one of the configured limits; the message names it and its variable."""

    def __init__(self, what: str, limit: int, variable: str) -> None:
        super().__init__(f"{what}; split it into smaller files, or raise {variable}")
        self.limit = limit


class UploadTooLarge(LimitExceeded):
    def __init__(self, limit: int) -> None:
        what = f"the file is larger than the upload limit of {limit} bytes ({limit / 2**20:.1f} MiB)"
        super().__init__(what, limit, "WB_MAX_UPLOAD_BYTES")


class TooManyRecords(LimitExceeded):
    def __init__(self, limit: int) -> None:
        super().__init__(
            f"the file holds more than {limit} records, the limit of one dataset", limit, "WB_DATASETS_MAX_RECORDS"
        )
