"""What can be asked of a dataset: commands are imperative and carry everything decide() needs."""

from dataclasses import dataclass
from datetime import datetime

from datasets_service.domain.dataset import DatasetInfo
from datasets_service.domain.pages import PageInfo


@dataclass(frozen=True, slots=True)
class RegisterDataset:
    """Register an uploaded, validated file whose records are already stored in pages."""

    dataset: DatasetInfo
    pages: tuple[PageInfo, ...]


@dataclass(frozen=True, slots=True)
class RenameDataset:
    """Give a dataset another display name (made safe as an upload's name is)."""

    dataset_id: str
    name: str
    renamed_at: datetime


@dataclass(frozen=True, slots=True)
class DeleteDataset:
    """Remove a dataset from the catalogue (its events stay in the log; its stored records go)."""

    dataset_id: str
    deleted_at: datetime
