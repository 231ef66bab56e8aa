"""Where workers tell what they serve: WorkerAnnounced and WorkerStateChanged on wb.workers.<worker>
(stored), WorkerHeartbeat on wb.heartbeats.<worker> (core NATS, not stored).

A worker killed outright announces nothing; the API takes a worker whose heartbeats stop for GONE.
"""

from datetime import datetime

from eventlog.events import NewEvent, to_timestamp
from eventlog.subjects import token
from workbench.inference.v1 import inference_pb2 as pb

HEARTBEAT_SUBJECTS = "wb.heartbeats.>"


def worker_subject(worker: str) -> str:
    return f"wb.workers.{token(worker)}"


def heartbeat_subject(worker: str) -> str:
    return f"wb.heartbeats.{token(worker)}"


def announced(worker: str, model_ids: list[str], at: datetime) -> NewEvent:
    """A worker (re)started: it serves these models, none loaded yet."""
    event = pb.WorkerAnnounced(worker=worker, model_ids=model_ids, at=to_timestamp(at))
    return NewEvent(worker_subject(worker), event)


def state_changed(worker: str, model_id: str, state: int, at: datetime, detail: str = "") -> NewEvent:
    """One model's state on the worker (every model's when model_id is empty: GONE)."""
    event = pb.WorkerStateChanged(
        worker=worker,
        model_id=model_id,
        state=state,  # type: ignore[arg-type]
        at=to_timestamp(at),
        detail=detail,
    )
    return NewEvent(worker_subject(worker), event)
