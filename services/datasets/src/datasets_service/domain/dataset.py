"""A registered dataset as the catalogue shows it (what the read model answers)."""

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from eventlog.events import to_timestamp
from workbench.datasets.v1.datasets_pb2 import RecordFormat


@dataclass(frozen=True, slots=True)
class DatasetInfo:
    dataset_id: str
    name: str
    format: "RecordFormat.ValueType"
    record_count: int
    sha256: str  # of the file as uploaded
    object_name: str  # legacy datasets only: the whole file, stored before pages existed
    size_bytes: int  # of the file as uploaded
    registered_at: datetime
    skipped_records: int = 0  # invalid records left out (skip_invalid)

    def message_fields(self) -> dict[str, Any]:
        """The fields as the contract's messages hold them (DatasetRegistered and Dataset share them)."""
        return {**asdict(self), "registered_at": to_timestamp(self.registered_at)}
