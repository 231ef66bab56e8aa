"""What callers ask of a run; decide() in state.py turns each into events (or refuses it).

Each command's fields are those of the event it becomes, by name (RequestRun: RunRequested,
BeginRun: RunStarted, RecordResult: ResultRecorded, CompleteRun: RunCompleted, FailRun: RunFailed,
CancelRun: RunCancelled).
"""

from dataclasses import dataclass
from datetime import datetime

from inference_service.domain.models import Sampling


@dataclass(frozen=True, slots=True)
class RequestRun:
    """A user asks for a model to run over a dataset (the StartRun RPC)."""

    run_id: str
    dataset_id: str
    model_id: str
    sampling: Sampling
    record_count: int
    requested_at: datetime
    sampling_explicit: bool = False  # the caller named the sampling (else: the model's defaults)
    request_id: str = ""  # the client's, so that a retry answers this run instead of starting another
    json_schema: str = ""  # structured output (empty: free text)
    dataset_sha256: str = ""
    model_path: str = ""


@dataclass(frozen=True, slots=True)
class BeginRun:
    """A worker begins working on a run (the first of its shards, or a later one)."""

    run_id: str
    worker: str
    engine: str
    model_revision: str
    started_at: datetime
    weights_hash: str = ""
    chat_template_hash: str = ""


@dataclass(frozen=True, slots=True)
class RecordResult:
    """A worker has the output (or the error) of one record."""

    run_id: str
    dataset_id: str
    model_id: str
    record_id: str
    output_text: str
    finish_reason: str
    prompt_tokens: int
    output_tokens: int
    latency_ms: float
    error: str
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class CompleteRun:
    """A worker has seen as many results on the log as the run has records."""

    run_id: str
    done: int
    failed: int
    completed_at: datetime


@dataclass(frozen=True, slots=True)
class FailRun:
    """The run cannot go on (its model cannot load, say)."""

    run_id: str
    error: str
    failed_at: datetime


@dataclass(frozen=True, slots=True)
class CancelRun:
    """A user stops a queued or running run; what it recorded so far is kept."""

    run_id: str
    cancelled_at: datetime


Command = RequestRun | BeginRun | RecordResult | CompleteRun | FailRun | CancelRun
