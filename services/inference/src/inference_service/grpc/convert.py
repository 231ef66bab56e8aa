"""Domain values to proto messages and back (the only place that knows both)."""

from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp

from inference_service.adapters.read_model import InferenceResult
from inference_service.domain.models import ModelSpec, Sampling
from inference_service.domain.state import RunState, RunStatus, sampling_from_proto, sampling_to_proto
from workbench.inference.v1 import inference_pb2 as pb

_STATUS = {
    RunStatus.QUEUED: pb.RUN_STATUS_QUEUED,
    RunStatus.RUNNING: pb.RUN_STATUS_RUNNING,
    RunStatus.COMPLETED: pb.RUN_STATUS_COMPLETED,
    RunStatus.FAILED: pb.RUN_STATUS_FAILED,
    RunStatus.CANCELLED: pb.RUN_STATUS_CANCELLED,
}


def model_to_proto(model: ModelSpec) -> pb.Model:
    return pb.Model(
        model_id=model.model_id,
        display_name=model.display_name,
        backend=model.backend,
        path=model.path,
        revision=model.revision,
        max_model_len=model.max_model_len,
        default_sampling=sampling_to_proto(model.sampling),
    )


def sampling_from_request(request: pb.StartRunRequest) -> Sampling | None:
    return sampling_from_proto(request.sampling) if request.HasField("sampling") else None


def run_to_proto(run: RunState) -> pb.Run:
    message = pb.Run(
        run_id=run.run_id,
        dataset_id=run.dataset_id,
        model_id=run.model_id,
        status=_STATUS.get(run.status, pb.RUN_STATUS_UNSPECIFIED) if run.status else pb.RUN_STATUS_UNSPECIFIED,
        total=run.total,
        done=run.done,
        failed=run.failed,
        output_tokens=run.output_tokens,
        tokens_per_second=run.tokens_per_second,
        eta_seconds=run.eta_seconds,
        sampling=sampling_to_proto(run.sampling),
        error=run.error,
        engine=run.engine,
        model_revision=run.model_revision,
    )
    for field, moment in (
        ("requested_at", run.requested_at),
        ("started_at", run.started_at),
        ("finished_at", run.finished_at),
    ):
        if moment is not None:
            getattr(message, field).CopyFrom(_timestamp(moment))
    return message


def result_to_proto(result: InferenceResult) -> pb.Result:
    return pb.Result(
        run_id=result.run_id,
        dataset_id=result.dataset_id,
        model_id=result.model_id,
        record_id=result.record_id,
        output_text=result.output_text,
        finish_reason=result.finish_reason,
        prompt_tokens=result.prompt_tokens,
        output_tokens=result.output_tokens,
        latency_ms=result.latency_ms,
        error=result.error,
    )


def _timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp
