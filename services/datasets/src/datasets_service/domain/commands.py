"""What can be asked of a dataset: commands are imperative and carry everything decide() needs."""

from dataclasses import dataclass
from datetime import datetime

from workbench.datasets.v1.datasets_pb2 import RecordFormat


@dataclass(frozen=True, slots=True)
class RegisterDataset:
    """Register an uploaded, validated file (already stored as object_name) as a dataset."""

    dataset_id: str
    name: str
    format: "RecordFormat.ValueType"
    record_count: int
    sha256: str
    object_name: str
    size_bytes: int
    registered_at: datetime


@dataclass(frozen=True, slots=True)
class DeleteDataset:
    """Remove a dataset from the catalogue (its events stay in the log)."""

    dataset_id: str
    deleted_at: datetime
