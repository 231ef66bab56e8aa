"""The curation read model: how the models' latest answers to each record disagree, folded from results.

CurationProjection keeps its own copy of every (dataset, record, model)'s latest answer instead of
reading annotations_outputs: each projection has its own runner and position, so the other one may
be behind or ahead of this one at any event (and is, during a rebuild); a copy of its own makes the
rows a fold of the log alone. Marks are not copied: filters read annotations_annotations when they
run, so a filter agrees with what ListAnnotations answers at that moment.
"""

import json
from collections.abc import Sequence

from sqlalchemy import Engine, delete, func
from sqlmodel import Column, Field, Session, SQLModel, Text, col, select

from annotations_service.adapters.tables import AnnotationRow
from annotations_service.domain.curation import RecordFacts
from annotations_service.domain.disagreement import Answer, Disagreement, disagreement
from annotations_service.domain.names import DATASET_SUBJECTS, RESULT_SUBJECTS
from eventlog import StoredEvent
from workbench.datasets.v1.datasets_pb2 import DatasetDeleted
from workbench.inference.v1.inference_pb2 import ResultRecorded

IN_CHUNK = 500  # ids per IN (...) query: below every database's limit on bound parameters


class CurationAnswerRow(SQLModel, table=True):
    """A model's latest answer to a record (the last ResultRecorded on the log wins, as in annotations_outputs)."""

    __tablename__ = "annotations_curation_answers"

    dataset_id: str = Field(primary_key=True)
    record_id: str = Field(primary_key=True)
    model_id: str = Field(primary_key=True)
    output_text: str = Field(sa_column=Column(Text, nullable=False))
    error: str = ""


class DisagreementRow(SQLModel, table=True):
    """How a record's latest answers disagree; one row per record with at least one answer."""

    __tablename__ = "annotations_disagreements"

    dataset_id: str = Field(primary_key=True)
    record_id: str = Field(primary_key=True)
    differs: bool
    score: float
    differing_paths: str = Field(sa_column=Column(Text, nullable=False))  # a JSON array of paths
    differing_models: str = Field(sa_column=Column(Text, nullable=False))  # a JSON array of model ids


class CurationDeletedDataset(SQLModel, table=True):
    """A dataset the datasets context deleted: results that still arrive for it are ignored."""

    __tablename__ = "annotations_curation_deleted_datasets"

    dataset_id: str = Field(primary_key=True)


class CurationProjection:
    """Applies ResultRecorded to annotations_curation_answers and annotations_disagreements."""

    name = "annotations_curation"
    subjects: Sequence[str] = (RESULT_SUBJECTS, DATASET_SUBJECTS)
    tables = (CurationAnswerRow, DisagreementRow, CurationDeletedDataset)

    def apply(self, session: Session, event: StoredEvent) -> None:
        self.apply_many(session, [event])

    def apply_many(self, session: Session, events: Sequence[StoredEvent]) -> None:
        """Folds a batch with one read of its records' answers and disagreements per IN_CHUNK
        records, and one write per answer and per record: a query per result made a run of
        10,000 records x 3 models take minutes to reach the counts."""
        deleted = set(session.exec(select(CurationDeletedDataset.dataset_id)))
        latest: dict[tuple[str, str, str], ResultRecorded] = {}  # (dataset, record, model) -> last in the batch
        for stored in events:
            message = stored.event
            if isinstance(message, DatasetDeleted):
                _fold_answers(session, latest)  # what came before the deletion, then the deletion
                latest.clear()
                for table in (CurationAnswerRow, DisagreementRow):
                    session.execute(delete(table).where(col(table.dataset_id) == message.dataset_id))
                session.merge(CurationDeletedDataset(dataset_id=message.dataset_id))
                deleted.add(message.dataset_id)
            elif isinstance(message, ResultRecorded) and message.dataset_id not in deleted:
                latest[(message.dataset_id, message.record_id, message.model_id)] = message
        _fold_answers(session, latest)

    def clear(self, session: Session) -> None:
        for table in self.tables:
            session.execute(delete(table))


def _fold_answers(session: Session, latest: dict[tuple[str, str, str], ResultRecorded]) -> None:
    """Stores the answers and the disagreement of every record they belong to."""
    grouped: dict[str, dict[str, dict[str, ResultRecorded]]] = {}  # dataset -> record -> model -> answer
    for (dataset_id, record_id, model_id), event in latest.items():
        grouped.setdefault(dataset_id, {}).setdefault(record_id, {})[model_id] = event
    for dataset_id, new_answers in grouped.items():
        record_ids = list(new_answers)
        for start in range(0, len(record_ids), IN_CHUNK):
            chunk = record_ids[start : start + IN_CHUNK]
            answers: dict[str, dict[str, CurationAnswerRow]] = {record_id: {} for record_id in chunk}
            stored = select(CurationAnswerRow).where(
                CurationAnswerRow.dataset_id == dataset_id, col(CurationAnswerRow.record_id).in_(chunk)
            )
            for row in session.exec(stored):
                answers[row.record_id][row.model_id] = row
            judged = select(DisagreementRow).where(
                DisagreementRow.dataset_id == dataset_id, col(DisagreementRow.record_id).in_(chunk)
            )
            verdicts = {row.record_id: row for row in session.exec(judged)}
            for record_id in chunk:
                by_model = answers[record_id]
                for model_id, event in new_answers[record_id].items():
                    answer = by_model.get(model_id)
                    if answer is None:
                        answer = CurationAnswerRow(
                            dataset_id=dataset_id, record_id=record_id, model_id=model_id, output_text=""
                        )
                        session.add(answer)
                        by_model[model_id] = answer
                    answer.output_text, answer.error = event.output_text, event.error
                found = disagreement([Answer(m, a.output_text, a.error) for m, a in sorted(by_model.items())])
                verdict = verdicts.get(record_id)
                if verdict is None:
                    verdict = DisagreementRow(
                        dataset_id=dataset_id,
                        record_id=record_id,
                        differs=False,
                        score=0.0,
                        differing_paths="[]",
                        differing_models="[]",
                    )
                    session.add(verdict)
                verdict.differs, verdict.score = found.differs, found.score
                verdict.differing_paths = json.dumps(list(found.differing_paths))
                verdict.differing_models = json.dumps(sorted(found.differing_models))


class CurationReadModel:
    """Reads for filters and counts; each opens its own short session and answers domain values."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def facts(self, dataset_id: str, record_ids: Sequence[str] | None = None) -> list[RecordFacts]:
        """Every record of the dataset (or of these ids) with an answer or a mark: its disagreement and marks."""
        marks: dict[str, dict[str, int]] = {}
        rows: list[DisagreementRow] = []
        chunks: list[Sequence[str] | None] = [None]
        if record_ids is not None:
            chunks = [record_ids[i : i + IN_CHUNK] for i in range(0, len(record_ids), IN_CHUNK)]
        with Session(self.engine) as session:
            for chunk in chunks:
                marked = select(AnnotationRow.record_id, AnnotationRow.model_id, AnnotationRow.kind).where(
                    AnnotationRow.dataset_id == dataset_id
                )
                differing = select(DisagreementRow).where(DisagreementRow.dataset_id == dataset_id)
                if chunk is not None:
                    marked = marked.where(col(AnnotationRow.record_id).in_(chunk))
                    differing = differing.where(col(DisagreementRow.record_id).in_(chunk))
                for record_id, model_id, kind in session.exec(marked):
                    marks.setdefault(record_id, {})[model_id] = kind
                rows.extend(session.exec(differing).all())
        found = {
            row.record_id: RecordFacts(row.record_id, _disagreement(row), marks.get(row.record_id, {})) for row in rows
        }
        for record_id, by_model in marks.items():
            found.setdefault(record_id, RecordFacts(record_id, marks=by_model))
        return list(found.values())

    def answered(self, dataset_id: str) -> dict[str, int]:
        """Model id -> how many of the dataset's records it has answered (failures included)."""
        query = (
            select(CurationAnswerRow.model_id, func.count())
            .where(CurationAnswerRow.dataset_id == dataset_id)
            .group_by(col(CurationAnswerRow.model_id))
        )
        with Session(self.engine) as session:
            return {model_id: number for model_id, number in session.exec(query)}

    def records_answering(self, dataset_id: str, text: str, model_id: str = "") -> set[str]:
        """The records with an answer (of the model, if named) holding text, ignoring case.

        The database compares case (SQLite: ASCII letters only; Postgres: ILIKE); the text's own
        % and _ are matched as they are.
        """
        escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = select(CurationAnswerRow.record_id).where(
            CurationAnswerRow.dataset_id == dataset_id,
            col(CurationAnswerRow.output_text).ilike(f"%{escaped}%", escape="\\"),
        )
        if model_id:
            query = query.where(CurationAnswerRow.model_id == model_id)
        with Session(self.engine) as session:
            return set(session.exec(query.distinct()))


def _disagreement(row: DisagreementRow) -> Disagreement:
    return Disagreement(
        differs=row.differs,
        score=row.score,
        differing_paths=tuple(json.loads(row.differing_paths)),
        differing_models=frozenset(json.loads(row.differing_models)),
    )
