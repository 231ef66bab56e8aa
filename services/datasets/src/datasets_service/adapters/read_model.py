"""The datasets read model: one row per live dataset, folded from the wb.datasets.> events."""

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, delete
from sqlalchemy.engine import make_url
from sqlmodel import Field, Session, SQLModel, create_engine, select

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


class DatasetProjection:
    """Applies DatasetRegistered / DatasetDeleted to datasets_datasets."""

    name = "datasets.datasets"
    subjects: Sequence[str] = ("wb.datasets.>",)

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
                    registered_at=message.registered_at.ToDatetime(tzinfo=UTC),
                )
            )
        elif isinstance(message, DatasetDeleted):
            row = session.get(DatasetRow, message.dataset_id)
            if row is not None:
                session.delete(row)

    def clear(self, session: Session) -> None:
        session.execute(delete(DatasetRow))


class DatasetQueries:
    """Reads of the datasets table."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def list(self) -> list[DatasetRow]:
        with Session(self.engine) as session:
            return list(session.exec(select(DatasetRow).order_by(DatasetRow.registered_sequence)))  # type: ignore[arg-type]

    def get(self, dataset_id: str) -> DatasetRow | None:
        with Session(self.engine) as session:
            return session.get(DatasetRow, dataset_id)


def make_engine(url: str) -> Engine:
    """An engine for the read-model database; creates the folder of a SQLite file."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    return create_engine(url)
