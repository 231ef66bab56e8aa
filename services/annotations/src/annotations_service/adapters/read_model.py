"""The annotations read model, folded from the log: latest outputs (from results) and annotations.

The service learns about model outputs only from the inference context's ResultRecorded events.
Dropping every row and replaying from sequence 1 gives the same tables.
"""

import json
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC
from typing import TypeVar

from sqlalchemy import Engine, delete, update
from sqlmodel import Session, col, select

from annotations_service.adapters.tables import AnnotationRow, DeletedDataset, OutputRow, ResultRow, RunRow
from annotations_service.domain.annotation import Annotation, JudgedOutput, recorded_annotation
from annotations_service.domain.export import run_facts
from annotations_service.domain.names import ANNOTATION_SUBJECTS, DATASET_SUBJECTS, RESULT_SUBJECTS, RUN_SUBJECTS
from eventlog import StoredEvent
from workbench.annotations.v1.annotations_pb2 import AnnotationCleared, AnnotationRecorded
from workbench.datasets.v1.datasets_pb2 import DatasetDeleted
from workbench.inference.v1.inference_pb2 import ResultRecorded, RunRequested, RunStarted

_IDS_PER_QUERY = 500


class AnnotationsProjection:
    """Applies ResultRecorded to annotations_outputs, AnnotationRecorded and AnnotationCleared to
    annotations_annotations."""

    name = "annotations"
    subjects: Sequence[str] = (RESULT_SUBJECTS, ANNOTATION_SUBJECTS, DATASET_SUBJECTS, RUN_SUBJECTS)
    tables = (OutputRow, AnnotationRow, DeletedDataset, RunRow, ResultRow)

    def apply(self, session: Session, event: StoredEvent) -> None:
        message = event.event
        if isinstance(message, RunRequested | RunStarted):
            self._run(session, message)
            return
        if isinstance(message, DatasetDeleted):
            # Its results and annotations stay in the log; the read model hides them, now and later.
            session.execute(delete(OutputRow).where(col(OutputRow.dataset_id) == message.dataset_id))
            session.execute(delete(AnnotationRow).where(col(AnnotationRow.dataset_id) == message.dataset_id))
            session.execute(delete(ResultRow).where(col(ResultRow.dataset_id) == message.dataset_id))
            session.merge(DeletedDataset(dataset_id=message.dataset_id))
            return
        if session.get(DeletedDataset, getattr(message, "dataset_id", "")) is not None:
            return
        if isinstance(message, ResultRecorded):
            self._result(session, event.sequence, message)
        elif isinstance(message, AnnotationRecorded):
            self._recorded(session, event.sequence, message)
        elif isinstance(message, AnnotationCleared):
            self._cleared(session, event.sequence, message)

    def apply_many(self, session: Session, events: Sequence[StoredEvent]) -> None:
        """The same rows as apply() event by event, with each run of consecutive results folded at
        once: one read per IN_CHUNK keys instead of two merges per result."""
        results: list[tuple[int, ResultRecorded]] = []
        for stored in events:
            if isinstance(stored.event, ResultRecorded):
                results.append((stored.sequence, stored.event))
                continue
            _fold_results(session, results)
            results = []
            self.apply(session, stored)
        _fold_results(session, results)

    def clear(self, session: Session) -> None:
        session.execute(delete(OutputRow))
        session.execute(delete(AnnotationRow))
        session.execute(delete(DeletedDataset))
        session.execute(delete(RunRow))
        session.execute(delete(ResultRow))

    @staticmethod
    def _run(session: Session, event: RunRequested | RunStarted) -> None:
        row = session.get(RunRow, event.run_id)
        facts: dict[str, object] = json.loads(row.reproducibility) if row is not None else {}
        facts.update(run_facts(event))
        session.merge(RunRow(run_id=event.run_id, reproducibility=json.dumps(facts, sort_keys=True)))

    @staticmethod
    def _result(session: Session, sequence: int, event: ResultRecorded) -> None:
        _fold_results(session, [(sequence, event)])

    def _recorded(self, session: Session, sequence: int, event: AnnotationRecorded) -> None:
        # The row is the domain's annotation, column for field.
        session.merge(AnnotationRow(**asdict(recorded_annotation(event, sequence))))
        self._advance(session, event.dataset_id, event.record_id, sequence)

    def _cleared(self, session: Session, sequence: int, event: AnnotationCleared) -> None:
        row = session.get(AnnotationRow, (event.dataset_id, event.record_id, event.model_id))
        if row is not None:
            session.delete(row)
        self._advance(session, event.dataset_id, event.record_id, sequence)

    @staticmethod
    def _advance(session: Session, dataset_id: str, record_id: str, sequence: int) -> None:
        # The version belongs to the record, so every model's row of the record moves on with it.
        session.flush()
        session.execute(
            update(AnnotationRow)
            .where(col(AnnotationRow.dataset_id) == dataset_id, col(AnnotationRow.record_id) == record_id)
            .values(version=sequence)
        )


IN_CHUNK = 500  # keys per IN (...) query: below every database's limit on bound parameters
_Row = TypeVar("_Row", OutputRow, ResultRow)


def _fold_results(session: Session, results: Sequence[tuple[int, ResultRecorded]]) -> None:
    """Stores results (stream sequence, event) in order: the latest output of each model for each
    record (a re-run replaces earlier ones: the latest output is what people judge) and every run's
    output; results of deleted datasets are ignored."""
    if not results:
        return
    deleted = set(session.exec(select(DeletedDataset.dataset_id)))
    outputs: dict[tuple[str, str, str], tuple[int, ResultRecorded]] = {}
    per_run: dict[tuple[str, str], ResultRecorded] = {}
    for sequence, event in results:
        if event.dataset_id in deleted:
            continue
        outputs[(event.dataset_id, event.record_id, event.model_id)] = (sequence, event)
        per_run[(event.run_id, event.record_id)] = event
    existing_outputs = _rows_by_key(session, OutputRow, list(outputs), ("dataset_id", "record_id", "model_id"))
    for key, (sequence, event) in outputs.items():
        output = existing_outputs.get(key)
        if output is None:
            output = OutputRow(
                dataset_id=key[0], record_id=key[1], model_id=key[2], run_id="", output_text="", sequence=0
            )
            session.add(output)
        output.run_id, output.output_text, output.error, output.sequence = (
            event.run_id,
            event.output_text,
            event.error,
            sequence,
        )
    existing_results = _rows_by_key(session, ResultRow, list(per_run), ("run_id", "record_id"))
    for (run_id, record_id), event in per_run.items():
        result = existing_results.get((run_id, record_id))
        if result is None:
            result = ResultRow(run_id=run_id, record_id=record_id, dataset_id="", model_id="", output_text="")
            session.add(result)
        result.dataset_id, result.model_id, result.output_text, result.error = (
            event.dataset_id,
            event.model_id,
            event.output_text,
            event.error,
        )


def _rows_by_key(
    session: Session, table: type[_Row], keys: Sequence[tuple[str, ...]], columns: tuple[str, ...]
) -> dict[tuple[str, ...], _Row]:
    """The table's rows with these primary keys, by key (columns: the key's columns, in order): one
    query per value of the first column and IN_CHUNK values of the second."""
    wanted = set(keys)
    seconds: dict[str, list[str]] = {}
    for key in keys:
        seconds.setdefault(key[0], []).append(key[1])
    found: dict[tuple[str, ...], _Row] = {}
    for first, values in seconds.items():
        unique = list(dict.fromkeys(values))
        for start in range(0, len(unique), IN_CHUNK):
            query = select(table).where(
                col(getattr(table, columns[0])) == first,
                col(getattr(table, columns[1])).in_(unique[start : start + IN_CHUNK]),
            )
            for row in session.exec(query):
                key = tuple(getattr(row, name) for name in columns)
                if key in wanted:
                    found[key] = row
    return found


class AnnotationsReadModel:
    """Reads of the annotations tables; each opens its own short session and answers domain values, never rows."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def is_deleted(self, dataset_id: str) -> bool:
        """Whether the datasets context deleted the dataset (its annotations are hidden for good)."""
        with Session(self.engine) as session:
            return session.get(DeletedDataset, dataset_id) is not None

    def latest_output(self, dataset_id: str, record_id: str, model_id: str) -> JudgedOutput | None:
        """The model's latest output for the record; None when no result has been projected yet."""
        with Session(self.engine) as session:
            row = session.get(OutputRow, (dataset_id, record_id, model_id))
            return None if row is None else JudgedOutput(row.output_text, row.error, row.run_id)

    def run_output(self, dataset_id: str, record_id: str, model_id: str, run_id: str) -> JudgedOutput | None:
        """The model's output for the record in that run; None when the run has none (or is another's)."""
        with Session(self.engine) as session:
            row = session.get(ResultRow, (run_id, record_id))
            if row is None or (row.dataset_id, row.model_id) != (dataset_id, model_id):
                return None
            return JudgedOutput(row.output_text, row.error, row.run_id)

    def annotation(self, dataset_id: str, record_id: str, model_id: str) -> Annotation | None:
        with Session(self.engine) as session:
            row = session.get(AnnotationRow, (dataset_id, record_id, model_id))
            return None if row is None else _annotation(row)

    def outputs(self, dataset_id: str, record_ids: Sequence[str]) -> dict[tuple[str, str], JudgedOutput]:
        """The latest output of each model for these records, by (record id, model id) (exports)."""
        wanted = sorted(set(record_ids))
        found: dict[tuple[str, str], JudgedOutput] = {}
        with Session(self.engine) as session:
            for start in range(0, len(wanted), _IDS_PER_QUERY):
                query = select(OutputRow).where(
                    OutputRow.dataset_id == dataset_id,
                    col(OutputRow.record_id).in_(wanted[start : start + _IDS_PER_QUERY]),
                )
                for row in session.exec(query):
                    found[(row.record_id, row.model_id)] = JudgedOutput(row.output_text, row.error, row.run_id)
        return found

    def output_models(self, dataset_id: str) -> list[str]:
        """The models with an output for some record of the dataset, sorted (exports)."""
        query = select(OutputRow.model_id).where(OutputRow.dataset_id == dataset_id).distinct()
        with Session(self.engine) as session:
            return sorted(session.exec(query))

    def run_facts(self, run_ids: Sequence[str]) -> dict[str, dict[str, object]]:
        """What reproduces each of these runs, with its run_id, by run id (exports)."""
        wanted = sorted(set(run_ids))
        found: dict[str, dict[str, object]] = {}
        with Session(self.engine) as session:
            for start in range(0, len(wanted), _IDS_PER_QUERY):
                query = select(RunRow).where(col(RunRow.run_id).in_(wanted[start : start + _IDS_PER_QUERY]))
                for row in session.exec(query):
                    found[row.run_id] = {"run_id": row.run_id, **json.loads(row.reproducibility)}
        return found

    def annotations(
        self, dataset_id: str, kinds: frozenset[int] | None = None, record_ids: Sequence[str] = ()
    ) -> list[Annotation]:
        """A dataset's current annotations by record id then model id.

        Only the given kinds, if any, and only the given records, if any (queried in chunks, so a
        long list stays within the database's limit on bound parameters).
        """
        query = select(AnnotationRow).where(AnnotationRow.dataset_id == dataset_id)
        if kinds is not None:
            query = query.where(col(AnnotationRow.kind).in_(kinds))
        order = (col(AnnotationRow.record_id), col(AnnotationRow.model_id))
        with Session(self.engine) as session:
            if not record_ids:
                return [_annotation(row) for row in session.exec(query.order_by(*order))]
            wanted = sorted(set(record_ids))
            found: list[AnnotationRow] = []
            for start in range(0, len(wanted), _IDS_PER_QUERY):
                chunk = wanted[start : start + _IDS_PER_QUERY]
                found.extend(session.exec(query.where(col(AnnotationRow.record_id).in_(chunk))))
            return [_annotation(row) for row in sorted(found, key=lambda row: (row.record_id, row.model_id))]


def _annotation(row: AnnotationRow) -> Annotation:
    values = row.model_dump()
    if row.recorded_at is not None:
        values["recorded_at"] = row.recorded_at.replace(tzinfo=UTC)  # SQLite hands it back naive
    return Annotation(**values)
