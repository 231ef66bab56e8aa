"""Queries on the read model; each opens its own short session."""

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from annotations_service.adapters.tables import AnnotationRow, OutputRow
from annotations_service.domain.commands import JudgedOutput


def latest_output(engine: Engine, dataset_id: str, record_id: str, model_id: str) -> JudgedOutput | None:
    with Session(engine) as session:
        row = session.get(OutputRow, (dataset_id, record_id, model_id))
        return None if row is None else JudgedOutput(output_text=row.output_text, error=row.error)


def annotation(engine: Engine, dataset_id: str, record_id: str, model_id: str) -> AnnotationRow | None:
    with Session(engine) as session:
        return session.get(AnnotationRow, (dataset_id, record_id, model_id))


def annotations(engine: Engine, dataset_id: str, kinds: frozenset[int] | None = None) -> list[AnnotationRow]:
    """A dataset's current annotations by record id then model id (only the given kinds, if any)."""
    query = select(AnnotationRow).where(AnnotationRow.dataset_id == dataset_id)
    if kinds is not None:
        query = query.where(col(AnnotationRow.kind).in_(kinds))
    with Session(engine) as session:
        return list(session.exec(query.order_by(col(AnnotationRow.record_id), col(AnnotationRow.model_id))))
