"""What can be asked of a dataset: commands are imperative and carry everything decide() needs."""

from dataclasses import dataclass
from datetime import datetime

from datasets_service.domain.dataset import DatasetInfo


@dataclass(frozen=True, slots=True)
class RegisterDataset:
    """Register an uploaded, validated file (already stored as dataset.object_name) as a dataset."""

    dataset: DatasetInfo


@dataclass(frozen=True, slots=True)
class DeleteDataset:
    """Remove a dataset from the catalogue (its events stay in the log)."""

    dataset_id: str
    deleted_at: datetime
