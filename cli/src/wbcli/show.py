"""What the command line prints: errors, problems of a refused file, and the tables of models and runs."""

from collections.abc import Iterable
from typing import Any

from rich.table import Table
from rich.text import Text

from wbcli.api import ApiError, Problem
from wbcli.board import FINISHED

PREFIX = "error: "
INDENT = " " * len(PREFIX)


def problem_lines(problems: Iterable[Problem], more: int) -> list[str]:
    """`line 3: field "prompt" must be a string`, one per problem, then how many more there were."""
    lines = [str(p) for p in problems]
    return lines + ([f"... and {more} more"] if more else [])


def error_text(error: ApiError) -> str:
    """`error: <detail>`, continued under itself, with the problems or per-model errors it carries.

    A refused file's detail usually lists its problems already; they are added only when it does not.
    """
    lines = error.detail.splitlines() or [error.error or "failed"]
    listed = problem_lines(error.problems, error.more)
    lines += [line for line in listed if line not in lines]
    lines += [f"{e.model_id}: {e.detail}" for e in error.model_errors if f"{e.model_id}: {e.detail}" not in lines]
    return "\n".join([PREFIX + lines[0], *(INDENT + line for line in lines[1:])])


def duration(seconds: float | None) -> str:
    """`1h 02m`, `3m 05s`, `12s`; empty when unknown."""
    if seconds is None or seconds <= 0:
        return ""
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def rate(tokens_per_second: float | None) -> str:
    return f"{tokens_per_second:,.1f}" if tokens_per_second else ""


def workers_text(workers: list[dict[str, Any]] | None) -> str:
    """`w1 ready, w2 loading`; `none` when no worker serves the model; `?` when the gateway does not say."""
    if workers is None:
        return "?"
    if not workers:
        return "none"
    return ", ".join(f"{w.get('worker', '?')} {w.get('state', '?')}" for w in workers)


def models_table(models: list[dict[str, Any]]) -> Table:
    table = Table(box=None, pad_edge=False)
    for name in ("model", "name", "backend", "workers"):
        table.add_column(name, no_wrap=name != "workers")
    for m in models:
        cells = (m["model_id"], m.get("display_name", ""), m.get("backend", ""), workers_text(m.get("workers")))
        table.add_row(*(Text(str(c)) for c in cells))
    return table


def waiting_text(waiting_for: object) -> str:
    """What a run waits for (e.g. a worker loading its model), in words; empty when nothing."""
    if not waiting_for:
        return ""
    if isinstance(waiting_for, list):
        return ", ".join(str(w) for w in waiting_for)
    return str(waiting_for)


def run_note(run: dict[str, Any]) -> str:
    """Why a run is where it is: its error, or what it waits for."""
    if run.get("error"):
        return str(run["error"])
    return waiting_text(run.get("waiting_for")) if run.get("status") == "queued" else ""


def runs_table(runs: list[dict[str, Any]]) -> Table:
    table = Table(box=None, pad_edge=False)
    for name in ("run", "dataset", "model", "status", "done", "failed", "tok/s", "eta", "requested", "note"):
        right = name in ("done", "failed", "tok/s", "eta")
        table.add_column(name, justify="right" if right else "left", no_wrap=name != "note")
    for r in runs:
        unfinished = r["status"] not in FINISHED
        cells = (
            r["run_id"],
            r["dataset_id"],
            r["model_id"],
            r["status"],
            f"{r['done']}/{r['total']}",
            str(r["failed"]),
            rate(r.get("tokens_per_second")),
            duration(r.get("eta_seconds")) if unfinished else "",
            (r.get("requested_at") or "")[:19].replace("T", " "),
            run_note(r),
        )
        table.add_row(*(Text(str(c)) for c in cells))
    return table
