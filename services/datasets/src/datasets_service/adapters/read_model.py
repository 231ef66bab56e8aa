"""The datasets read model: one row per live dataset and one per page of its records, folded from
the wb.datasets.> events."""

import builtins
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import Engine, delete
from sqlmodel import Field, Session, SQLModel, col, select

from datasets_service.domain.dataset import DatasetInfo
from datasets_service.domain.pages import PageInfo
from eventlog import StoredEvent
from workbench.datasets.v1.datasets_pb2 import DatasetDeleted, DatasetRegistered, DatasetRenamed


class DatasetRow(SQLModel, table=True):
    __tablename__ = "datasets_datasets"

    dataset_id: str = Field(primary_key=True)
    # The stream sequence of the DatasetRegistered event: lists come in registration order.
    registered_sequence: int = Field(index=True)
    name: str
    format: int
    record_count: int
    skipped_records: int
    sha256: str = Field(index=True)  # an upload of the same content answers this dataset
    object_name: str  # legacy datasets only
    size_bytes: int
    registered_at: datetime  # UTC


class PageRow(SQLModel, table=True):
    __tablename__ = "datasets_pages"

    dataset_id: str = Field(primary_key=True)
    number: int = Field(primary_key=True)
    first_index: int  # the position of its first record in the dataset
    record_count: int
    object_name: str
    sha256: str
    size_bytes: int
    legacy: bool  # a whole JSONL file stored before pages existed


class DatasetsProjection:
    """Applies DatasetRegistered / DatasetRenamed / DatasetDeleted to datasets_datasets and datasets_pages."""

    name = "datasets.datasets"
    subjects: Sequence[str] = ("wb.datasets.>",)
    tables = (DatasetRow, PageRow)

    def apply(self, session: Session, event: StoredEvent) -> None:
        message = event.event
        if isinstance(message, DatasetRegistered):
            self._register(session, message, event.sequence)
        elif isinstance(message, DatasetRenamed):
            row = session.get(DatasetRow, message.dataset_id)
            if row is not None:
                row.name = message.name
                session.add(row)
        elif isinstance(message, DatasetDeleted):
            session.execute(delete(PageRow).where(col(PageRow.dataset_id) == message.dataset_id))
            session.execute(delete(DatasetRow).where(col(DatasetRow.dataset_id) == message.dataset_id))

    def _register(self, session: Session, message: DatasetRegistered, sequence: int) -> None:
        # merge: applying the same registration twice leaves identical rows
        session.merge(
            DatasetRow(
                dataset_id=message.dataset_id,
                registered_sequence=sequence,
                name=message.name,
                format=message.format,
                record_count=message.record_count,
                skipped_records=message.skipped_records,
                sha256=message.sha256,
                object_name=message.object_name,
                size_bytes=message.size_bytes,
                registered_at=message.registered_at.ToDatetime(tzinfo=UTC),  # always set
            )
        )
        if not message.pages:  # registered before pages existed: its whole file is its one page
            pages = [(message.object_name, message.record_count, message.sha256, message.size_bytes, True)]
        else:
            pages = [(p.object_name, p.record_count, p.sha256, p.size_bytes, False) for p in message.pages]
        first_index = 0
        for number, (object_name, record_count, sha256, size_bytes, legacy) in enumerate(pages):
            session.merge(
                PageRow(
                    dataset_id=message.dataset_id,
                    number=number,
                    first_index=first_index,
                    record_count=record_count,
                    object_name=object_name,
                    sha256=sha256,
                    size_bytes=size_bytes,
                    legacy=legacy,
                )
            )
            first_index += record_count

    def clear(self, session: Session) -> None:
        session.execute(delete(PageRow))
        session.execute(delete(DatasetRow))


class DatasetsReadModel:
    """Reads of the datasets tables; each answers domain values, never rows."""

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

    def with_content(self, sha256: str) -> DatasetInfo | None:
        """The first live dataset uploaded from a file with this sha256, if any."""
        query = select(DatasetRow).where(DatasetRow.sha256 == sha256).order_by(col(DatasetRow.registered_sequence))
        with Session(self.engine) as session:
            row = session.exec(query.limit(1)).first()
            return None if row is None else _info(row)

    def pages(self, dataset_id: str, start: int = 0, end: int | None = None) -> builtins.list[PageInfo]:
        """The pages of a dataset holding any of the records at positions start .. end-1 (end None:
        to the last), in order."""
        query = select(PageRow).where(PageRow.dataset_id == dataset_id)
        query = query.where(col(PageRow.first_index) + col(PageRow.record_count) > start)
        if end is not None:
            query = query.where(col(PageRow.first_index) < end)
        with Session(self.engine) as session:
            return [_page(row) for row in session.exec(query.order_by(col(PageRow.number)))]


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
        skipped_records=row.skipped_records,
    )


def _page(row: PageRow) -> PageInfo:
    return PageInfo(
        row.number, row.first_index, row.record_count, row.object_name, row.sha256, row.size_bytes, row.legacy
    )
