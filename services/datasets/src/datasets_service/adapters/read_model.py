"""The datasets read model: one row per live dataset, folded from the wb.datasets.> events."""

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import Engine, delete
from sqlmodel import Field, Session, SQLModel, col, select

from datasets_service.domain.dataset import DatasetInfo
from eventlog import StoredEvent
from workbench.datasets.v1.datasets_pb2 import DatasetDeleted, DatasetRegistered


class DatasetRow(SQLModel, table=True):
    __tablename__ = "datasets_datasets"

    dataset_id: str = Field(primary_key=True)
    # The stream sequence of the DatasetRegistered event: lists come in registration order.
    registered_sequence: int = Field(index=True)
    name: str
    format: int
    record_count: int
    sha256: str
    object_name: str
    size_bytes: int
    registered_at: datetime  # UTC


class DatasetsProjection:
    """Applies DatasetRegistered / DatasetDeleted to datasets_datasets."""

    name = "datasets.datasets"
    subjects: Sequence[str] = ("wb.datasets.>",)
    tables = (DatasetRow,)

    def apply(self, session: Session, event: StoredEvent) -> None:
        message = event.event
        if isinstance(message, DatasetRegistered):
            # merge: applying the same registration twice leaves one identical row
            session.merge(
                DatasetRow(
                    dataset_id=message.dataset_id,
                    registered_sequence=event.sequence,
                    name=message.name,
                    format=message.format,
                    record_count=message.record_count,
                    sha256=message.sha256,
                    object_name=message.object_name,
                    size_bytes=message.size_bytes,
                    registered_at=message.registered_at.ToDatetime(tzinfo=UTC),  # always set
                )
            )
        elif isinstance(message, DatasetDeleted):
            row = session.get(DatasetRow, message.dataset_id)
            if row is not None:
                session.delete(row)

    def clear(self, session: Session) -> None:
        session.execute(delete(DatasetRow))


class DatasetsReadModel:
    """Reads of the datasets table; each answers domain values, never rows."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def list(self) -> list[DatasetInfo]:
        with Session(self.engine) as session:
            return [
                _info(row) for row in session.exec(select(DatasetRow).order_by(col(DatasetRow.registered_sequence)))
            ]

    def get(self, dataset_id: str) -> DatasetInfo | None:
        with Session(self.engine) as session:
            row = session.get(DatasetRow, dataset_id)
            return None if row is None else _info(row)


def _info(row: DatasetRow) -> DatasetInfo:
    return DatasetInfo(
        dataset_id=row.dataset_id,
        name=row.name,
        format=row.format,  # type: ignore[arg-type]
        record_count=row.record_count,
        sha256=row.sha256,
        object_name=row.object_name,
        size_bytes=row.size_bytes,
        registered_at=row.registered_at.replace(tzinfo=UTC),  # SQLite hands it back naive
    )
