"""A registered dataset as the catalogue shows it (what the read model answers)."""

from dataclasses import dataclass
from datetime import datetime

from workbench.datasets.v1.datasets_pb2 import RecordFormat


@dataclass(frozen=True, slots=True)
class DatasetInfo:
    dataset_id: str
    name: str
    format: "RecordFormat.ValueType"
    record_count: int
    sha256: str
    object_name: str
    size_bytes: int
    registered_at: datetime
