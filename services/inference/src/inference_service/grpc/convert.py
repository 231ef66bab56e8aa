"""Domain values to proto messages and back (the only place that knows both)."""

from collections.abc import Sequence
from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp

from eventlog.events import to_timestamp
from inference_service.domain.models import ModelSpec, Sampling
from inference_service.domain.state import RunState, RunStatus, sampling_from_proto, sampling_to_proto
from workbench.inference.v1 import inference_pb2 as pb

# What a Model message shares with ModelSpec, and a Run message with RunState, by name.
_MODEL_FIELDS = ("model_id", "display_name", "backend", "path", "revision", "max_model_len")
_RUN_FIELDS = (
    *("run_id", "dataset_id", "model_id", "total", "done", "failed", "output_tokens"),
    *("tokens_per_second", "eta_seconds", "error", "engine", "model_revision", "request_id"),
)
# What reproduces a run, by name in RunState and Reproducibility.
_REPRODUCIBILITY_FIELDS = (
    *("dataset_sha256", "model_path", "model_revision", "weights_hash", "chat_template_hash"),
    *("engine", "sampling_explicit", "json_schema"),
)
_STATUS = {
    RunStatus.QUEUED: pb.RUN_STATUS_QUEUED,
    RunStatus.RUNNING: pb.RUN_STATUS_RUNNING,
    RunStatus.COMPLETED: pb.RUN_STATUS_COMPLETED,
    RunStatus.FAILED: pb.RUN_STATUS_FAILED,
    RunStatus.CANCELLED: pb.RUN_STATUS_CANCELLED,
}


def model_to_proto(model: ModelSpec, workers: Sequence[pb.WorkerView] = ()) -> pb.Model:
    shared = {name: getattr(model, name) for name in _MODEL_FIELDS}
    return pb.Model(**shared, default_sampling=sampling_to_proto(model.sampling), workers=workers)


def sampling_from_request(request: pb.StartRunRequest) -> Sampling | None:
    return sampling_from_proto(request.sampling) if request.HasField("sampling") else None


def run_to_proto(run: RunState, waiting_for: str = "") -> pb.Run:
    reproducibility = pb.Reproducibility(
        **{name: getattr(run, name) for name in _REPRODUCIBILITY_FIELDS}, sampling=sampling_to_proto(run.sampling)
    )
    return pb.Run(
        **{name: getattr(run, name) for name in _RUN_FIELDS},
        status=_STATUS[run.status] if run.status else pb.RUN_STATUS_UNSPECIFIED,
        sampling=sampling_to_proto(run.sampling),
        requested_at=_timestamp(run.requested_at),
        started_at=_timestamp(run.started_at),
        finished_at=_timestamp(run.finished_at),
        reproducibility=reproducibility,
        waiting_for=waiting_for,
    )


def _timestamp(moment: datetime | None) -> Timestamp | None:
    return None if moment is None else to_timestamp(moment)
