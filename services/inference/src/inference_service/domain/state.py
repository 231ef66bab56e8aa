"""A run's state as a fold of its events, and the pure decisions taken on it.

A run lives on two subjects: wb.runs.<run_id> (requested, started, completed, failed) and
wb.results.<run_id> (one ResultRecorded per record). Every event carries a deterministic message id,
so a retried append (a redelivered shard, a restarted worker) is dropped by JetStream.
"""

import base64
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from inference_service.domain.commands import Command, CompleteRun, FailRun, RecordResult, RequestRun, StartRun
from inference_service.domain.errors import Conflict, FailedPrecondition
from inference_service.domain.models import Sampling
from inference_service.domain.progress import rates
from workbench.inference.v1 import inference_pb2 as pb


def run_subject(run_id: str) -> str:
    return f"wb.runs.{run_id}"


def results_subject(run_id: str) -> str:
    return f"wb.results.{run_id}"


def progress_subject(run_id: str) -> str:
    return f"wb.progress.{run_id}"


_SAFE_ID = re.compile(r"[A-Za-z0-9_\-]{1,200}")


def id_token(value: str) -> str:
    """A user-chosen id (a record id) as it may appear in a message id: injective and header-safe.

    NATS header values lose surrounding whitespace and turn CR/LF into spaces, so "q1" and "q1 "
    would collide and JetStream would drop one as a duplicate. Safe ids stay as they are; any other
    becomes "~" + base32 (the form of eventlog.token(), which the domain may not import; fullmatch,
    so that "q1\n" is not taken for a safe id).
    """
    if _SAFE_ID.fullmatch(value):
        return value
    return "~" + base64.b32encode(value.encode()).decode().rstrip("=")


def result_msg_id(run_id: str, record_id: str) -> str:
    return f"result:{run_id}:{id_token(record_id)}"


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINISHED = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED})


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event decided by the domain, with where it goes and its deduplication id."""

    subject: str
    event: Message
    msg_id: str


@dataclass(frozen=True, slots=True)
class RunState:
    """What is known about a run; status None means it was never requested."""

    run_id: str
    status: RunStatus | None = None
    dataset_id: str = ""
    model_id: str = ""
    sampling: Sampling = field(default_factory=Sampling)
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


def evolve(state: RunState, event: Message) -> RunState:
    """The state after one event; never raises, ignores events that do not apply."""
    if isinstance(event, pb.RunRequested):
        if state.status is not None:
            return state
        return replace(
            state,
            status=RunStatus.QUEUED,
            dataset_id=event.dataset_id,
            model_id=event.model_id,
            sampling=sampling_from_proto(event.sampling),
            total=event.record_count,
            requested_at=_time(event.requested_at),
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
            started_at=_time(event.started_at),
        )
    if isinstance(event, pb.ResultRecorded):
        recorded_at = _time(event.recorded_at)
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
        return replace(state, status=RunStatus.COMPLETED, finished_at=_time(event.completed_at))
    if isinstance(event, pb.RunFailed):
        return replace(state, status=RunStatus.FAILED, error=event.error, finished_at=_time(event.failed_at))
    if isinstance(event, pb.RunCancelled):
        return replace(state, status=RunStatus.CANCELLED, finished_at=_time(event.cancelled_at))
    return state


def decide(state: RunState, command: Command) -> list[NewEvent]:
    """The events a command produces on a run; an empty list when it has already happened."""
    if isinstance(command, RequestRun):
        return _request(state, command)
    if isinstance(command, StartRun):
        if state.status != RunStatus.QUEUED:
            return []
        return [
            NewEvent(
                run_subject(command.run_id),
                pb.RunStarted(
                    run_id=command.run_id,
                    worker=command.worker,
                    engine=command.engine,
                    model_revision=command.model_revision,
                    started_at=_timestamp(command.started_at),
                ),
                f"started:{command.run_id}",
            )
        ]
    if isinstance(command, RecordResult):
        return [record_result(command)]
    if isinstance(command, CompleteRun):
        if state.finished or command.done < state.total:
            return []
        event = pb.RunCompleted(
            run_id=command.run_id,
            done=command.done,
            failed=command.failed,
            completed_at=_timestamp(command.completed_at),
        )
        return [NewEvent(run_subject(command.run_id), event, f"completed:{command.run_id}")]
    if isinstance(command, FailRun):
        if state.finished:
            return []
        failed = pb.RunFailed(run_id=command.run_id, error=command.error, failed_at=_timestamp(command.failed_at))
        return [NewEvent(run_subject(command.run_id), failed, f"failed:{command.run_id}")]
    raise TypeError(f"unknown command {command!r}")


def record_result(command: RecordResult) -> NewEvent:
    """A result needs no run state: it is keyed by run and record, so a repeat is deduplicated."""
    event = pb.ResultRecorded(
        run_id=command.run_id,
        dataset_id=command.dataset_id,
        model_id=command.model_id,
        record_id=command.record_id,
        output_text=command.output_text,
        finish_reason=command.finish_reason,
        prompt_tokens=command.prompt_tokens,
        output_tokens=command.output_tokens,
        latency_ms=command.latency_ms,
        error=command.error,
        recorded_at=_timestamp(command.recorded_at),
    )
    return NewEvent(results_subject(command.run_id), event, result_msg_id(command.run_id, command.record_id))


def _request(state: RunState, command: RequestRun) -> list[NewEvent]:
    if state.status is not None:
        raise Conflict(f"run {command.run_id} already exists; start a new run instead")
    if command.record_count < 1:
        raise FailedPrecondition(
            f"dataset {command.dataset_id} has no records; upload a file with at least one record first"
        )
    event = pb.RunRequested(
        run_id=command.run_id,
        dataset_id=command.dataset_id,
        model_id=command.model_id,
        sampling=sampling_to_proto(command.sampling),
        record_count=command.record_count,
        requested_at=_timestamp(command.requested_at),
    )
    return [NewEvent(run_subject(command.run_id), event, f"run:{command.run_id}")]


def sampling_to_proto(sampling: Sampling) -> pb.SamplingParams:
    return pb.SamplingParams(
        temperature=sampling.temperature, top_p=sampling.top_p, max_tokens=sampling.max_tokens, seed=sampling.seed
    )


def sampling_from_proto(message: pb.SamplingParams) -> Sampling:
    return Sampling(
        temperature=message.temperature, top_p=message.top_p, max_tokens=message.max_tokens, seed=message.seed
    )


def _timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _time(stamp: Timestamp) -> datetime | None:
    if stamp.seconds == 0 and stamp.nanos == 0:
        return None
    return stamp.ToDatetime(tzinfo=UTC)
