"""Queries on the read model; each opens its own short session."""

from collections.abc import Sequence

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


_IDS_PER_QUERY = 500


def annotations(
    engine: Engine,
    dataset_id: str,
    kinds: frozenset[int] | None = None,
    record_ids: Sequence[str] = (),
) -> list[AnnotationRow]:
    """A dataset's current annotations by record id then model id.

    Only the given kinds, if any, and only the given records, if any (queried in chunks, so a
    long list stays within the database's limit on bound parameters).
    """
    query = select(AnnotationRow).where(AnnotationRow.dataset_id == dataset_id)
    if kinds is not None:
        query = query.where(col(AnnotationRow.kind).in_(kinds))
    order = (col(AnnotationRow.record_id), col(AnnotationRow.model_id))
    with Session(engine) as session:
        if not record_ids:
            return list(session.exec(query.order_by(*order)))
        wanted = sorted(set(record_ids))
        found: list[AnnotationRow] = []
        for start in range(0, len(wanted), _IDS_PER_QUERY):
            chunk = wanted[start : start + _IDS_PER_QUERY]
            found.extend(session.exec(query.where(col(AnnotationRow.record_id).in_(chunk))))
        return sorted(found, key=lambda row: (row.record_id, row.model_id))
