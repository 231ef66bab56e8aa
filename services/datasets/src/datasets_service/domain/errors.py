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


class UploadTooLarge(InvalidInput):
    """An upload went past the configured size limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"the file is larger than the upload limit of {limit} bytes ({limit / 2**20:.1f} MiB); "
            "split it into smaller files, or raise WB_MAX_UPLOAD_BYTES"
        )
        self.limit = limit


class TooManyRecords(InvalidInput):
    """An upload holds more records than the configured limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"the file holds more than {limit} records, the limit of one dataset; "
            "split it into smaller files, or raise WB_DATASETS_MAX_RECORDS"
        )
        self.limit = limit
