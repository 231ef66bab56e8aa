"""What `workbench run --wait` knows about the runs it watches, folded from the API's answers and frames.

The runs read model (GET /admin/benchmarks/{run_id}) says when a run has finished: once it does,
the run's results are readable too. WebSocket frames only make the display livelier and tell when
to ask again: progress snapshots, and run events that arrive a moment before the read model has them.
"""

import time
from dataclasses import dataclass, field
from typing import Any

FINISHED = frozenset({"completed", "failed", "cancelled"})
ENDING_EVENTS = {"RunCompleted": "completed", "RunFailed": "failed", "RunCancelled": "cancelled"}
PROGRESS_FIELDS = ("done", "total", "failed", "tokens_per_second", "eta_seconds")
# How long a run whose end event has arrived may stay unfinished in the read model before the
# event is believed without it (a read model that fell behind must not hold the command forever).
SETTLE_S = 30.0


@dataclass
class WatchedRun:
    view: dict[str, Any]  # the latest answer of GET /admin/benchmarks/{run_id}, progress merged in
    ended_as: str = ""  # the status an end event announced, before the read model says so
    ended_at: float = 0.0  # monotonic time of that event
    ended_with: str = ""  # the error a RunFailed event gave

    @property
    def status(self) -> str:
        return str(self.view["status"])

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


@dataclass
class RunBoard:
    """The watched runs by id, in the order they were started."""

    runs: dict[str, WatchedRun] = field(default_factory=dict)

    @classmethod
    def of(cls, views: list[dict[str, Any]]) -> "RunBoard":
        return cls({v["run_id"]: WatchedRun(dict(v)) for v in views})

    @property
    def finished(self) -> bool:
        return all(r.finished for r in self.runs.values())

    @property
    def unfinished(self) -> list[str]:
        return [run_id for run_id, r in self.runs.items() if not r.finished]

    @property
    def settling(self) -> bool:
        """Some run has ended by its event but not yet in the read model: worth asking again soon."""
        return any(r.ended_as and not r.finished for r in self.runs.values())

    def apply_view(self, view: dict[str, Any], now: float | None = None) -> None:
        """A run as the read model has it; an end event older than SETTLE_S wins over a lagging view."""
        watched = self.runs.get(view["run_id"])
        if watched is None:
            return
        watched.view = dict(view)
        now = time.monotonic() if now is None else now
        if watched.ended_as and not watched.finished and now - watched.ended_at > SETTLE_S:
            watched.view["status"] = watched.ended_as
            watched.view["error"] = watched.view.get("error") or watched.ended_with

    def apply_frame(self, frame: dict[str, Any], now: float | None = None) -> None:
        """A WebSocket frame: progress of a watched run, or one of its lifecycle events; others are ignored."""
        if frame.get("type") == "progress":
            progress = frame.get("progress") or {}
            watched = self.runs.get(progress.get("run_id", ""))
            if watched is not None and not watched.finished:
                watched.view.update({k: progress[k] for k in PROGRESS_FIELDS if k in progress})
        elif frame.get("type") == "run":
            watched = self.runs.get(frame.get("run_id", ""))
            if watched is None or watched.finished:
                return
            event = frame.get("event", "")
            if event == "RunStarted" and watched.status == "queued":
                watched.view["status"] = "running"
            elif event in ENDING_EVENTS:
                watched.ended_as = ENDING_EVENTS[event]
                watched.ended_at = time.monotonic() if now is None else now
                watched.ended_with = str(frame.get("error") or "")
