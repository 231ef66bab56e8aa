"""One function per command: read the arguments, call the API, print. An ApiError ends any of them.

Machine-readable output (ids, tables, result lines) goes to stdout, everything else to stderr, so
`DATASET=$(workbench upload cands.jsonl)` and `workbench run ... | cut -f1` work.
"""

import argparse
import asyncio
import json
import os
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx
from rich.console import Console

from wbcli.api import Api, ApiError, ModelError, Settings, model_errors_of, problems_of
from wbcli.batch_output import batch_line, json_line, unix_time
from wbcli.board import FINISHED, RunBoard
from wbcli.show import error_text, models_table, problem_lines, rate, runs_table
from wbcli.watch import ProgressDisplay, Watcher

T = TypeVar("T")
SAMPLING_OPTIONS = ("temperature", "top_p", "max_tokens", "seed")
INTERRUPTED = 130


@dataclass
class Context:
    """Where the gateway is and where the command prints (tests answer with a transport of their own)."""

    settings: Settings
    transport: httpx.AsyncBaseTransport | None = None
    out: IO[str] = field(default_factory=lambda: sys.stdout)
    err: IO[str] = field(default_factory=lambda: sys.stderr)

    def call(self, use: Callable[[Api], Awaitable[T]]) -> T:
        """Runs use(api) on a fresh event loop and connection pool."""

        async def with_api() -> T:
            async with Api(self.settings, self.transport) as api:
                return await use(api)

        return asyncio.run(with_api())

    def say(self, text: str) -> None:
        print(text, file=self.err, flush=True)

    def table_console(self) -> Console:
        # Not a terminal (a pipe, a file): no width to fit, so never fold an id across lines.
        console = Console(file=self.out, highlight=False)
        if not console.is_terminal:
            console.width = 1000
        return console


def upload(ctx: Context, args: argparse.Namespace) -> int:
    path = Path(args.file)
    try:
        file = path.open("rb")
    except OSError as error:
        raise ApiError(f"cannot read {path}: {error.strerror}") from None
    with file:
        _, body = ctx.call(lambda api: api.upload(path, file, args.skip_invalid))
    dataset = body["dataset"]
    print(dataset["dataset_id"], file=ctx.out, flush=True)
    if body.get("already_registered"):
        ctx.say(body.get("detail") or f"the same content is already dataset {dataset['dataset_id']}")
        return 0
    ctx.say(f"registered {dataset['name']}: {dataset['record_count']} records")
    if body.get("report"):
        problems, more = problems_of(body["report"])
        ctx.say(f"left out {body['report'].get('skipped_records', 0)} invalid records:")
        for line in problem_lines(problems, more):
            ctx.say(f"  {line}")
    return 0


def models(ctx: Context, _: argparse.Namespace) -> int:
    found = ctx.call(lambda api: api.models())
    ctx.table_console().print(models_table(found))
    return 0


def runs(ctx: Context, args: argparse.Namespace) -> int:
    found = ctx.call(lambda api: api.runs(args.dataset))
    ctx.table_console().print(runs_table(found))
    return 0


def cancel(ctx: Context, args: argparse.Namespace) -> int:
    cancelled, refused = ctx.call(lambda api: cancel_each(api, args.run_ids))
    for run in cancelled:
        print(f"{run['run_id']}\t{run['status']}", file=ctx.out, flush=True)
    for error in refused:
        ctx.say(error_text(error))
    return 1 if refused else 0


async def cancel_each(api: Api, run_ids: Sequence[str]) -> tuple[list[dict[str, Any]], list[ApiError]]:
    """Cancels every run it can: one that has ended meanwhile (409) does not stop the others."""
    cancelled: list[dict[str, Any]] = []
    refused: list[ApiError] = []
    for run_id in run_ids:
        try:
            cancelled.append(await api.cancel(run_id))
        except ApiError as error:
            if error.status != 409:
                raise
            refused.append(error)
    return cancelled, refused


def json_schema(path: str) -> Any:
    """The schema file's JSON (an object); a file that is not one is the user's to fix, before any run starts."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ApiError(f"cannot read the JSON schema {path}: {getattr(error, 'strerror', None) or error}") from None
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as error:
        raise ApiError(f"the JSON schema {path} is not valid JSON: line {error.lineno}: {error.msg}") from None
    if not isinstance(schema, dict):
        raise ApiError(f'the JSON schema {path} must be a JSON object, e.g. {{"type": "object", ...}}')
    return schema


def run_request(args: argparse.Namespace) -> dict[str, Any]:
    """The body of POST /admin/benchmarks/run; a fresh request id, so that a retry starts nothing twice."""
    body: dict[str, Any] = {"dataset_id": args.dataset, "model_ids": list(dict.fromkeys(args.models))}
    sampling = {name: getattr(args, name) for name in SAMPLING_OPTIONS if getattr(args, name) is not None}
    if sampling:
        body["sampling"] = sampling
    if args.json_schema:
        body["json_schema"] = json_schema(args.json_schema)
    body["request_id"] = str(uuid.uuid4())
    return body


def run(ctx: Context, args: argparse.Namespace) -> int:
    body = run_request(args)
    answer = ctx.call(lambda api: api.start_runs(body))
    started: list[dict[str, Any]] = answer.get("runs", [])
    not_started = model_errors_of(answer)
    for view in started:
        print(f"{view['run_id']}\t{view['model_id']}", file=ctx.out, flush=True)
    for error in not_started:
        ctx.say(f"error: {error.model_id}: {error.detail}")
    if not args.wait:
        return 1 if not_started else 0
    board = RunBoard.of(started)
    console = Console(file=ctx.err, highlight=False)
    try:
        with ProgressDisplay(console) as display:
            ctx.call(lambda api: Watcher(api, board, display, console).watch())
    except KeyboardInterrupt:
        return interrupted(ctx, board, args.cancel_on_interrupt)
    return outcome(ctx, board, not_started)


def outcome(ctx: Context, board: RunBoard, not_started: tuple[ModelError, ...]) -> int:
    """One line per run; 0 when every model's run completed."""
    for watched in board.runs.values():
        v = watched.view
        speed = rate(v.get("tokens_per_second"))
        line = f"{v['model_id']}: {v['status']}, {v['done']}/{v['total']} done, {v['failed']} failed"
        line += f", {speed} tok/s" if speed else ""
        line += f": {v['error']}" if v.get("error") else ""
        ctx.say(line)
    all_completed = all(w.status == "completed" for w in board.runs.values())
    return 0 if all_completed and not not_started else 1


def interrupted(ctx: Context, board: RunBoard, cancel_without_asking: bool) -> int:
    unfinished = board.unfinished
    if not unfinished:
        return INTERRUPTED
    models = ", ".join(str(board.runs[run_id].view["model_id"]) for run_id in unfinished)
    if cancel_without_asking or ask(f"cancel the unfinished runs ({models})? [y/N] "):
        cancelled, refused = ctx.call(lambda api: cancel_each(api, unfinished))
        for view in cancelled:
            ctx.say(f"cancelled run {view['run_id']} ({view['model_id']}): {view['status']}")
        for error in refused:  # it ended while we asked
            ctx.say(error_text(error))
    else:
        ctx.say("the runs go on: `workbench runs` shows them, `workbench cancel RUN` stops one")
    return INTERRUPTED


def ask(question: str) -> bool:
    """A yes from the terminal; no terminal, end of input or a second Ctrl-C is a no."""
    if not sys.stdin.isatty():
        return False
    try:
        return input(question).strip().lower() in ("y", "yes")
    except (EOFError, KeyboardInterrupt):
        print(file=sys.stderr)
        return False


def results(ctx: Context, args: argparse.Namespace) -> int:
    to_stdout = args.output == "-"
    target = nullcontext(ctx.out) if to_stdout else replaced_on_success(Path(args.output))
    with target as out:
        view, written, failed = ctx.call(lambda api: write_results(api, args.run_id, args.format, out))
    where = "stdout" if to_stdout else args.output
    ctx.say(f"wrote {written} results of run {args.run_id} ({view['model_id']}, {failed} failed) to {where}")
    if view["status"] not in FINISHED:
        ctx.say(f"the run is still {view['status']}: the file holds the results recorded so far")
    return 0


async def write_results(api: Api, run_id: str, form: str, out: IO[str]) -> tuple[dict[str, Any], int, int]:
    """Pages through the run's results in recorded order; the run, how many were written, how many failed."""
    view = await api.run(run_id)
    created = unix_time(view.get("finished_at") or view.get("started_at") or view.get("requested_at"))
    written = failed = 0
    while True:
        page, total = await api.results_page(run_id, written)
        for result in page:
            out.write(json_line(batch_line(result, created) if form == "openai-batch" else result))
            failed += bool(result.get("error"))
        written += len(page)
        if not page or written >= total:
            return view, written, failed


@contextmanager
def replaced_on_success(path: Path) -> Iterator[IO[str]]:
    """A temporary file beside path that replaces it only when writing succeeded: never half a file."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        file = temporary.open("w", encoding="utf-8", newline="\n")
    except OSError as error:
        raise ApiError(f"cannot write {path}: {error.strerror}") from None
    try:
        with file:
            yield file
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise ApiError(f"cannot write {path}: {error.strerror}") from None
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


COMMANDS: dict[str, Callable[[Context, argparse.Namespace], int]] = {
    "upload": upload,
    "models": models,
    "run": run,
    "runs": runs,
    "cancel": cancel,
    "results": results,
}
