"""What `run --wait` believes about its runs: frames make it livelier, the read model says when it is over."""

from typing import Any

from wbcli.board import SETTLE_S, RunBoard


def view(run_id: str, status: str = "queued", **fields: Any) -> dict[str, Any]:
    return {"run_id": run_id, "model_id": "m", "status": status, "done": 0, "total": 4, "failed": 0, **fields}


def progress(run_id: str, done: int) -> dict[str, Any]:
    snapshot = {"run_id": run_id, "done": done, "total": 4, "failed": 0, "tokens_per_second": 9.5, "eta_seconds": 3}
    return {"type": "progress", "progress": snapshot}


def test_progress_frames_move_the_watched_runs_only() -> None:
    board = RunBoard.of([view("r1"), view("r2")])

    board.apply_frame(progress("r1", 3))
    board.apply_frame(progress("other", 4))

    assert (board.runs["r1"].view["done"], board.runs["r1"].view["tokens_per_second"]) == (3, 9.5)
    assert board.runs["r2"].view["done"] == 0
    assert "other" not in board.runs


def test_an_end_event_asks_for_the_read_model_which_alone_finishes_the_run() -> None:
    board = RunBoard.of([view("r1", "running")])

    board.apply_frame({"type": "run", "event": "RunCompleted", "run_id": "r1", "done": 4, "failed": 0}, now=100.0)

    assert board.settling and not board.finished
    board.apply_view(view("r1", "running", done=4), now=101.0)  # the read model is a moment behind
    assert not board.finished
    board.apply_view(view("r1", "completed", done=4), now=102.0)
    assert board.finished and not board.settling


def test_a_read_model_that_stays_behind_is_overruled_by_the_event_after_a_while() -> None:
    board = RunBoard.of([view("r1", "running")])
    board.apply_frame({"type": "run", "event": "RunFailed", "run_id": "r1", "error": "no worker"}, now=100.0)

    board.apply_view(view("r1", "running"), now=100.0 + SETTLE_S + 1)

    assert board.finished
    assert (board.runs["r1"].status, board.runs["r1"].view["error"]) == ("failed", "no worker")


def test_late_progress_does_not_undo_a_finished_run() -> None:
    board = RunBoard.of([view("r1", "running")])
    board.apply_view(view("r1", "cancelled", done=2))

    board.apply_frame(progress("r1", 3))
    board.apply_frame({"type": "run", "event": "RunStarted", "run_id": "r1"})

    assert (board.runs["r1"].status, board.runs["r1"].view["done"]) == ("cancelled", 2)


def test_a_started_event_shows_a_queued_run_running() -> None:
    board = RunBoard.of([view("r1")])

    board.apply_frame({"type": "run", "event": "RunStarted", "run_id": "r1"})

    assert board.runs["r1"].status == "running"
    assert board.unfinished == ["r1"]
