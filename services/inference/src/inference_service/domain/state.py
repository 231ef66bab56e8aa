"""A run's state as a fold of its events, and the pure decisions taken on it.

A run lives on two subjects: wb.runs.<run_id> (requested, started, completed, failed) and
wb.results.<run_id> (one ResultRecorded per record). Every event carries a deterministic message id,
so a retried append (a redelivered shard, a restarted worker) is dropped by JetStream.
"""

import hashlib
import re
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

from google.protobuf.message import Message

from eventlog.events import NewEvent, from_timestamp, to_timestamp
from eventlog.subjects import token
from inference_service.domain.commands import (
    BeginRun,
    CancelRun,
    Command,
    CompleteRun,
    FailRun,
    RecordResult,
    RequestRun,
)
from inference_service.domain.errors import Conflict, FailedPrecondition, NotFound
from inference_service.domain.models import SAMPLING_FIELDS, Sampling
from inference_service.domain.progress import rates
from servicehost.text import storable
from workbench.inference.v1 import inference_pb2 as pb

EventT = TypeVar("EventT", bound=Message)


# Run ids this service hands out (new_run_id, run_id_for_request) are one subject token. Anything else
# names no run; in a subject it would be a wildcard ("*"), several tokens ("a.b") or invalid (".x").
_RUN_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def is_run_id(value: str) -> bool:
    """False for what cannot be a run's id, so it never reaches a subject."""
    return _RUN_ID.fullmatch(value) is not None


def run_subject(run_id: str) -> str:
    return f"wb.runs.{run_id}"


def results_subject(run_id: str) -> str:
    return f"wb.results.{run_id}"


def progress_subject(run_id: str) -> str:
    return f"wb.progress.{run_id}"


def run_id_for_request(request_id: str) -> str:
    """The run a client's request id names: the same id always names the same run."""
    return "run_" + hashlib.sha256(request_id.encode()).hexdigest()[:12]


def result_msg_id(run_id: str, record_id: str) -> str:
    # A record id is the user's: NATS header values lose surrounding whitespace and turn CR/LF into
    # spaces, so "q1" and "q1 " would collide and JetStream would drop one as a duplicate. Its
    # subject token is injective and header-safe.
    return f"result:{run_id}:{token(record_id)}"


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINISHED = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED})


@dataclass(frozen=True, slots=True)
class RunState:
    """What is known about a run; status None means it was never requested."""

    run_id: str
    status: RunStatus | None = None
    dataset_id: str = ""
    model_id: str = ""
    sampling: Sampling = field(default_factory=Sampling)
    sampling_explicit: bool = False  # the run named its sampling: records' own sampling is ignored
    total: int = 0
    done: int = 0
    failed: int = 0
    output_tokens: int = 0
    error: str = ""
    worker: str = ""
    engine: str = ""
    model_revision: str = ""
    requested_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    last_result_at: datetime | None = None
    request_id: str = ""
    json_schema: str = ""
    dataset_sha256: str = ""
    model_path: str = ""
    weights_hash: str = ""
    chat_template_hash: str = ""

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def elapsed_s(self) -> float:
        """Seconds from the start to the latest result, by the events' own times (so a rebuild agrees)."""
        if self.started_at is None or self.last_result_at is None:
            return 0.0
        return max((self.last_result_at - self.started_at).total_seconds(), 0.0)

    @property
    def tokens_per_second(self) -> float:
        return rates(self.done, self.total, self.output_tokens, self.elapsed_s).tokens_per_second

    @property
    def eta_seconds(self) -> float:
        if self.finished:
            return 0.0
        return rates(self.done, self.total, self.output_tokens, self.elapsed_s).eta_seconds


def evolve(state: RunState, event: Message, sequence: int) -> RunState:
    """The state after one event; never raises, ignores events that do not apply.

    sequence (the event's stream sequence) is not kept: a run's workers race by design and their
    events are told apart by message ids (see decide), not by the run's version.
    """
    if isinstance(event, pb.RunRequested):
        if state.status is not None:
            return state
        return replace(
            state,
            status=RunStatus.QUEUED,
            dataset_id=event.dataset_id,
            model_id=event.model_id,
            sampling=sampling_from_proto(event.sampling),
            sampling_explicit=event.sampling_explicit,
            total=event.record_count,
            requested_at=from_timestamp(event.requested_at),
            request_id=event.request_id,
            json_schema=event.json_schema,
            dataset_sha256=event.dataset_sha256,
            model_path=event.model_path,
        )
    if isinstance(event, pb.RunStarted):
        if state.status not in (RunStatus.QUEUED, None):
            return state
        return replace(
            state,
            status=RunStatus.RUNNING,
            worker=event.worker,
            engine=event.engine,
            model_revision=event.model_revision,
            started_at=from_timestamp(event.started_at),
            weights_hash=event.weights_hash,
            chat_template_hash=event.chat_template_hash,
        )
    if isinstance(event, pb.ResultRecorded):
        recorded_at = from_timestamp(event.recorded_at)
        latest = state.last_result_at
        return replace(
            state,
            done=state.done + 1,
            failed=state.failed + (1 if event.error else 0),
            output_tokens=state.output_tokens + event.output_tokens,
            last_result_at=recorded_at if latest is None or (recorded_at and recorded_at > latest) else latest,
        )
    if state.finished:
        return state
    if isinstance(event, pb.RunCompleted):
        return replace(state, status=RunStatus.COMPLETED, finished_at=from_timestamp(event.completed_at))
    if isinstance(event, pb.RunFailed):
        return replace(state, status=RunStatus.FAILED, error=event.error, finished_at=from_timestamp(event.failed_at))
    if isinstance(event, pb.RunCancelled):
        return replace(state, status=RunStatus.CANCELLED, finished_at=from_timestamp(event.cancelled_at))
    return state


def decide(state: RunState, command: Command) -> list[NewEvent]:
    """The events a command produces on a run; an empty list when it has already happened."""
    subject = run_subject(command.run_id)
    if isinstance(command, RequestRun):
        return _request(state, command)
    if isinstance(command, BeginRun):
        if state.status != RunStatus.QUEUED:
            return []
        return [NewEvent(subject, _event(pb.RunStarted, command), f"started:{command.run_id}")]
    if isinstance(command, RecordResult):
        return [record_result(command)]
    if isinstance(command, CompleteRun):
        if state.finished or command.done < state.total:
            return []
        return [NewEvent(subject, _event(pb.RunCompleted, command), f"completed:{command.run_id}")]
    if isinstance(command, FailRun):
        if state.finished:
            return []
        return [NewEvent(subject, _event(pb.RunFailed, command), f"failed:{command.run_id}")]
    if isinstance(command, CancelRun):
        if state.status is None:
            raise NotFound(f"run {command.run_id!r} not found; ListRuns shows the runs that exist")
        if state.status is RunStatus.CANCELLED:
            return []  # a retried cancel
        if state.finished:
            raise FailedPrecondition(f"run {command.run_id} has already ended ({state.status}); nothing to cancel")
        return [NewEvent(subject, _event(pb.RunCancelled, command), f"cancelled:{command.run_id}")]
    raise TypeError(f"unknown command {command!r}")


def record_result(command: RecordResult) -> NewEvent:
    """A result needs no run state: it is keyed by run and record, so a repeat is deduplicated.

    Model output is untrusted text: a NUL in it is recorded as U+FFFD (servicehost.text.storable),
    because no Postgres text column takes a NUL, and a projector storing one would fail on that event
    at every restart.
    """
    event = _event(pb.ResultRecorded, command)
    event.output_text = storable(event.output_text)
    return NewEvent(results_subject(command.run_id), event, result_msg_id(command.run_id, command.record_id))


def _request(state: RunState, command: RequestRun) -> list[NewEvent]:
    if state.status is not None and command.request_id and state.request_id == command.request_id:
        if (state.dataset_id, state.model_id) != (command.dataset_id, command.model_id):
            raise Conflict(
                f"request id {command.request_id!r} already started run {command.run_id} of {state.model_id} "
                f"over {state.dataset_id}; use a new request id for another run"
            )
        return []  # a retry of the request that started this run: it stands as it is
    if state.status is not None:
        raise Conflict(f"run {command.run_id} already exists; start a new run instead")
    if command.record_count < 1:
        raise FailedPrecondition(
            f"dataset {command.dataset_id} has no records; upload a file with at least one record first"
        )
    event = _event(pb.RunRequested, command)
    # A new run's subject must be empty: two requests that drew the same id cannot both be stored.
    return [NewEvent(run_subject(command.run_id), event, f"run:{command.run_id}", expected_sequence=0)]


def _event(kind: type[EventT], command: Command) -> EventT:
    """The event of a command: its fields are the command's, by name (see commands.py)."""
    return kind(**{item.name: _as_proto(getattr(command, item.name)) for item in fields(command)})


def _as_proto(value: object) -> Any:
    if isinstance(value, datetime):
        return to_timestamp(value)
    if isinstance(value, Sampling):
        return sampling_to_proto(value)
    return value


def sampling_to_proto(sampling: Sampling) -> pb.SamplingParams:
    return pb.SamplingParams(**asdict(sampling))


def sampling_from_proto(message: pb.SamplingParams) -> Sampling:
    return Sampling(**{name: getattr(message, name) for name in SAMPLING_FIELDS})
