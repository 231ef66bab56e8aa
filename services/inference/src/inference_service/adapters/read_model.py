"""The runs and results read model: SQL tables folded from wb.runs.> and wb.results.>.

A run's row is the domain's RunState (evolve() decides every change), so the table can never disagree
with what a worker would compute from the log. Times are aware UTC datetimes (sqlmodel's UTCDateTime).
"""

from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime

from sqlalchemy import Engine, Text, delete, func
from sqlmodel import Column, Field, Session, SQLModel, col, select

from eventlog import StoredEvent
from eventlog.events import from_timestamp, to_timestamp
from inference_service.domain.models import SAMPLING_FIELDS, Sampling
from inference_service.domain.state import FINISHED, RunState, RunStatus, evolve
from workbench.datasets.v1.datasets_pb2 import DatasetDeleted
from workbench.inference.v1 import inference_pb2 as pb


class InferenceRun(SQLModel, table=True):
    __tablename__ = "inference_runs"

    run_id: str = Field(primary_key=True)
    dataset_id: str = Field(index=True)
    model_id: str
    status: str = Field(index=True)
    total: int = 0
    done: int = 0
    failed: int = 0
    output_tokens: int = 0
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 0
    seed: int = 0
    sampling_explicit: bool = False
    error: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    worker: str = ""
    engine: str = ""
    model_revision: str = ""
    requested_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    last_result_at: datetime | None = None
    request_id: str = Field(default="", index=True)
    json_schema: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    dataset_sha256: str = ""
    model_path: str = ""
    weights_hash: str = ""
    chat_template_hash: str = ""


class WorkerRow(SQLModel, table=True):
    """One model's state on one worker, as the worker announced it."""

    __tablename__ = "inference_workers"

    worker: str = Field(primary_key=True)
    model_id: str = Field(primary_key=True)
    state: int  # pb.WorkerState
    since: datetime | None = None
    detail: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))


class InferenceResult(SQLModel, table=True):
    __tablename__ = "inference_results"

    run_id: str = Field(primary_key=True)
    record_id: str = Field(primary_key=True)
    dataset_id: str = Field(index=True)
    model_id: str
    output_text: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    finish_reason: str = ""
    prompt_tokens: int = 0
    output_tokens: int = 0
    latency_ms: float = 0.0
    error: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    recorded_at: datetime | None = None
    sequence: int = Field(default=0, index=True)


class DeletedDataset(SQLModel, table=True):
    """A dataset deleted in the datasets context: its runs and results are hidden, now and later."""

    __tablename__ = "inference_deleted_datasets"

    dataset_id: str = Field(primary_key=True)


# What a result row shares, by name, with the ResultRecorded it is folded from and the Result it answers.
_RESULT_FIELDS = tuple(pb.Result.DESCRIPTOR.fields_by_name)
# The columns of a run's row that hold the RunState field of the same name (its sampling is one
# column per Sampling field; its status is stored as a string).
_RUN_FIELDS = (
    "dataset_id",
    "model_id",
    "sampling_explicit",
    "total",
    "done",
    "failed",
    "output_tokens",
    "error",
    "worker",
    "engine",
    "model_revision",
    "requested_at",
    "started_at",
    "finished_at",
    "last_result_at",
    "request_id",
    "json_schema",
    "dataset_sha256",
    "model_path",
    "weights_hash",
    "chat_template_hash",
)

IN_CHUNK = 500  # ids per IN (...) list: well inside SQLite's and Postgres' limits on bound parameters

_RUN_EVENTS = (pb.RunRequested, pb.RunStarted, pb.RunCompleted, pb.RunFailed, pb.RunCancelled)


class RunsProjection:
    """Folds run and result events into inference_runs and inference_results; a deleted dataset's
    runs and results leave the tables (they stay in the log)."""

    name: str = "inference_runs"
    subjects: Sequence[str] = ("wb.runs.>", "wb.results.>", "wb.datasets.>", "wb.workers.>")
    tables = (InferenceRun, InferenceResult, DeletedDataset, WorkerRow)

    def apply(self, session: Session, event: StoredEvent) -> None:
        self.apply_many(session, [event])

    def apply_many(self, session: Session, events: Sequence[StoredEvent]) -> None:
        """Folds a batch with one lookup per run and per IN_CHUNK results, and writes each run once.

        The projector runs on the API's event loop, so a batch must not cost a query per event.
        """
        known = _recorded_keys(session, [stored.event for stored in events])
        runs: dict[str, tuple[RunState | None, InferenceRun | None]] = {}
        deleted = set(session.exec(select(DeletedDataset.dataset_id)))
        for stored in events:
            message = stored.event
            if isinstance(message, pb.WorkerAnnounced | pb.WorkerStateChanged):
                _fold_worker(session, message)
                continue
            if isinstance(message, DatasetDeleted):
                _write_runs(session, runs)
                runs.clear()
                _hide_dataset(session, message.dataset_id)
                deleted.add(message.dataset_id)
                continue
            if getattr(message, "dataset_id", None) in deleted:
                continue  # a result or a run request of a dataset deleted meanwhile
            if isinstance(message, pb.ResultRecorded):
                # A result repeated beyond JetStream's dedup window must not count twice.
                key = (message.run_id, message.record_id)
                if key in known:
                    continue
                known.add(key)
                session.add(_result_row(message, stored.sequence))
            elif not isinstance(message, _RUN_EVENTS):
                continue
            if message.run_id not in runs:
                row = session.get(InferenceRun, message.run_id)
                runs[message.run_id] = (_state(row) if row is not None else None, row)
            state, row = runs[message.run_id]
            if state is None:
                if not isinstance(message, pb.RunRequested):
                    continue  # no such run (yet, or its dataset was deleted): nothing to fold into
                state = RunState(message.run_id)
            runs[message.run_id] = (evolve(state, message, stored.sequence), row)
        _write_runs(session, runs)
        session.flush()

    def clear(self, session: Session) -> None:
        session.execute(delete(InferenceResult))
        session.execute(delete(InferenceRun))
        session.execute(delete(DeletedDataset))
        session.execute(delete(WorkerRow))


def _fold_worker(session: Session, event: pb.WorkerAnnounced | pb.WorkerStateChanged) -> None:
    """A (re)started worker forgets what it served before; a state change moves one model, or every
    model of the worker when it has none (GONE)."""
    at = from_timestamp(event.at)
    if isinstance(event, pb.WorkerAnnounced):
        session.execute(delete(WorkerRow).where(col(WorkerRow.worker) == event.worker))
        session.flush()
        for model_id in event.model_ids:
            session.add(WorkerRow(worker=event.worker, model_id=model_id, state=pb.WORKER_STATE_READY, since=at))
        return
    query = select(WorkerRow).where(WorkerRow.worker == event.worker)
    if event.model_id:
        query = query.where(WorkerRow.model_id == event.model_id)
    for row in session.exec(query):
        row.state, row.since, row.detail = event.state, at, event.detail
        session.add(row)


def _write_runs(session: Session, runs: dict[str, tuple[RunState | None, InferenceRun | None]]) -> None:
    for state, row in runs.values():
        if state is not None:
            session.add(_write(state, row))
    session.flush()


def _hide_dataset(session: Session, dataset_id: str) -> None:
    session.execute(delete(InferenceResult).where(col(InferenceResult.dataset_id) == dataset_id))
    session.execute(delete(InferenceRun).where(col(InferenceRun.dataset_id) == dataset_id))
    session.merge(DeletedDataset(dataset_id=dataset_id))


class RunsReadModel:
    """Queries on the read model; each answers domain values (RunState) or contract messages
    (pb.Result), never rows."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get_run(self, run_id: str) -> RunState | None:
        with Session(self.engine) as session:
            row = session.get(InferenceRun, run_id)
            return _state(row) if row is not None else None

    def list_runs(self, dataset_id: str = "", active_only: bool = False) -> list[RunState]:
        query = select(InferenceRun)
        if dataset_id:
            query = query.where(InferenceRun.dataset_id == dataset_id)
        if active_only:
            query = query.where(col(InferenceRun.status).not_in([status.value for status in FINISHED]))
        query = query.order_by(col(InferenceRun.requested_at).desc(), col(InferenceRun.run_id))
        with Session(self.engine) as session:
            return [_state(row) for row in session.exec(query)]

    def workers(self) -> dict[str, list[pb.WorkerView]]:
        """Each model's workers as they last announced their state, by model id (gone ones included)."""
        found: dict[str, list[pb.WorkerView]] = {}
        with Session(self.engine) as session:
            for row in session.exec(select(WorkerRow).order_by(col(WorkerRow.worker))):
                view = pb.WorkerView(worker=row.worker, state=row.state, detail=row.detail)  # type: ignore[arg-type]
                if row.since is not None:
                    view.since.CopyFrom(to_timestamp(row.since))
                found.setdefault(row.model_id, []).append(view)
        return found

    def results_page(self, run_id: str, offset: int, limit: int) -> tuple[list[pb.Result], int]:
        """A run's results in recorded order, from offset (at most limit of them), and how many there are."""
        with Session(self.engine) as session:
            total = session.exec(
                select(func.count()).select_from(InferenceResult).where(InferenceResult.run_id == run_id)
            ).one()
            query = (
                select(InferenceResult)
                .where(InferenceResult.run_id == run_id)
                .order_by(col(InferenceResult.sequence))
                .offset(offset)
                .limit(limit)
            )
            return [_result(row) for row in session.exec(query)], total

    def list_results(self, dataset_id: str = "", run_id: str = "", record_ids: Sequence[str] = ()) -> list[pb.Result]:
        """Results in recorded order; only those of record_ids when it is not empty.

        One query (record_id IN ...), split in chunks of IN_CHUNK ids so that a long list stays
        within the database's limit on bound parameters.
        """
        query = select(InferenceResult)
        if dataset_id:
            query = query.where(InferenceResult.dataset_id == dataset_id)
        if run_id:
            query = query.where(InferenceResult.run_id == run_id)
        wanted = list(dict.fromkeys(record_ids))
        chunks: list[list[str] | None] = [wanted[at : at + IN_CHUNK] for at in range(0, len(wanted), IN_CHUNK)]
        rows: list[InferenceResult] = []
        with Session(self.engine) as session:
            for chunk in chunks or [None]:
                part = query if chunk is None else query.where(col(InferenceResult.record_id).in_(chunk))
                rows.extend(session.exec(part.order_by(col(InferenceResult.sequence))))
        if len(chunks) > 1:
            rows.sort(key=lambda row: row.sequence)
        return [_result(row) for row in rows]


def _recorded_keys(session: Session, messages: Sequence[object]) -> set[tuple[str, str]]:
    """The (run_id, record_id) pairs among these results that the table already holds."""
    wanted: dict[str, list[str]] = {}
    for message in messages:
        if isinstance(message, pb.ResultRecorded):
            wanted.setdefault(message.run_id, []).append(message.record_id)
    known: set[tuple[str, str]] = set()
    for run_id, record_ids in wanted.items():
        unique = list(dict.fromkeys(record_ids))
        for start in range(0, len(unique), IN_CHUNK):
            query = select(InferenceResult.record_id).where(
                InferenceResult.run_id == run_id,
                col(InferenceResult.record_id).in_(unique[start : start + IN_CHUNK]),
            )
            known.update((run_id, record_id) for record_id in session.exec(query))
    return known


def _result_row(message: pb.ResultRecorded, sequence: int) -> InferenceResult:
    shared = {name: getattr(message, name) for name in _RESULT_FIELDS}
    return InferenceResult(**shared, recorded_at=from_timestamp(message.recorded_at), sequence=sequence)


def _result(row: InferenceResult) -> pb.Result:
    return pb.Result(**{name: getattr(row, name) for name in _RESULT_FIELDS})


def _state(row: InferenceRun) -> RunState:
    return RunState(
        run_id=row.run_id,
        status=RunStatus(row.status),
        sampling=Sampling(**{name: getattr(row, name) for name in SAMPLING_FIELDS}),
        **{name: getattr(row, name) for name in _RUN_FIELDS},
    )


def _write(state: RunState, row: InferenceRun | None) -> InferenceRun:
    if row is None:
        row = InferenceRun(run_id=state.run_id, dataset_id=state.dataset_id, model_id=state.model_id, status="")
    row.status = (state.status or RunStatus.QUEUED).value
    for name in _RUN_FIELDS:
        setattr(row, name, getattr(state, name))
    for name, value in asdict(state.sampling).items():
        setattr(row, name, value)
    return row
