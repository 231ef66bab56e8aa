"""`workbench run --wait`: a live progress bar per run, fed by WS /ws/workbench, or by polling.

The socket is opened before the runs are read, so no frame between the read and the subscription is
missed; a close with code 4000 ("reload") means frames were lost: read the runs again and reconnect.
When no socket can be opened, GET /admin/benchmarks/{run_id} every POLL_S seconds does the same job.
"""

import asyncio
import json
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from wbcli.api import Api, ApiError
from wbcli.board import RunBoard, WatchedRun
from wbcli.show import duration, rate, run_note

POLL_S = 2.0  # without a socket
REFRESH_S = 10.0  # with a socket: frames are best effort, the read model is the truth
SETTLING_S = 0.5  # a run's end event arrived: ask the read model again soon
OPEN_TIMEOUT_S = 10.0
CLOSE_RELOAD = 4000
CLOSE_UNAUTHORIZED = 4401
MAX_TRANSIENT_FAILURES = 30  # consecutive failed reads (gateway restarting, overloaded) before giving up


class SocketUnavailable(Exception):
    """No WebSocket could be opened: the caller polls instead."""


class ProgressDisplay:
    """One bar per run: model, done/total, failed, tokens/s, ETA, status.

    On a console that is not a terminal (a CI log) bars would only be drawn at the end: there a
    line is printed whenever a run's status changes instead.
    """

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live = console.is_terminal
        columns = ("{task.fields[failed]}", "{task.fields[rate]}", "{task.fields[eta]}", "{task.fields[status]}")
        self.progress = Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            TextColumn("{task.completed:.0f}/{task.total:.0f}", markup=False),
            *(TextColumn(column, markup=False) for column in columns),
            console=console,
            disable=not self.live,
        )
        self.tasks: dict[str, TaskID] = {}
        self.printed: dict[str, str] = {}

    def __enter__(self) -> "ProgressDisplay":
        self.progress.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.progress.stop()

    def show(self, board: RunBoard) -> None:
        for run_id, watched in board.runs.items():
            fields = bar_fields(watched)
            if not self.live:
                line = f"{watched.view['model_id']}: {fields['status']}"
                if self.printed.get(run_id) != line:
                    self.printed[run_id] = line
                    print(line, file=self.console.file, flush=True)  # a log: never wrapped
            elif run_id not in self.tasks:
                self.tasks[run_id] = self.progress.add_task(str(watched.view["model_id"]), **fields)
            else:
                self.progress.update(self.tasks[run_id], **fields)


def bar_fields(watched: WatchedRun) -> dict[str, Any]:
    v = watched.view
    tps = rate(v.get("tokens_per_second"))
    eta = "" if watched.finished else duration(v.get("eta_seconds"))
    status = watched.status
    if note := run_note(v):
        status = f"{status}: {note}"
    return {
        "completed": v.get("done", 0),
        "total": max(int(v.get("total") or 0), 1),
        "failed": f"failed {v['failed']}" if v.get("failed") else "",
        "rate": f"{tps} tok/s" if tps else "",
        "eta": f"ETA {eta}" if eta else "",
        "status": status,
    }


class Watcher:
    """Follows the board's runs until every one has finished."""

    def __init__(self, api: Api, board: RunBoard, display: ProgressDisplay, console: Console) -> None:
        self.api = api
        self.board = board
        self.display = display
        self.console = console
        self.failures = 0

    async def watch(self) -> None:
        try:
            await self.follow_socket()
        except SocketUnavailable as why:
            note = f"live updates unavailable ({why}); asking every {POLL_S:.0f} s"
            self.console.print(note, markup=False, highlight=False, soft_wrap=True)
            await self.poll()

    async def poll(self) -> None:
        while True:
            await self.refresh()
            if self.board.finished:
                return
            await asyncio.sleep(POLL_S)

    async def follow_socket(self) -> None:
        url = self.api.settings.websocket_url
        while not self.board.finished:
            try:
                socket = await connect(
                    url, additional_headers=self.api.settings.auth_headers, open_timeout=OPEN_TIMEOUT_S, max_size=None
                )
            except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as error:
                raise SocketUnavailable(str(error) or type(error).__name__) from None
            try:
                await self.refresh()
                while not self.board.finished:
                    wait = SETTLING_S if self.board.settling else REFRESH_S
                    try:
                        text = await asyncio.wait_for(socket.recv(), wait)
                    except TimeoutError:
                        await self.refresh()
                        continue
                    self.board.apply_frame(decode(text))
                    self.display.show(self.board)
            except ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd else None
                if code == CLOSE_UNAUTHORIZED:
                    raise ApiError("the gateway refused the API token on the WebSocket: check WB_API_TOKEN") from None
                if code != CLOSE_RELOAD:
                    await asyncio.sleep(1)  # dropped: reconnect (and read the runs again) after a breath
            finally:
                await socket.close()

    async def refresh(self) -> None:
        """Reads every unfinished run; a gateway that is briefly away is waited for, within limits."""
        try:
            views = await asyncio.gather(*(self.api.run(run_id) for run_id in self.board.unfinished))
        except ApiError as error:
            if error.status and error.status < 500:
                raise
            self.failures += 1
            if self.failures >= MAX_TRANSIENT_FAILURES:
                raise
            return
        self.failures = 0
        for view in views:
            self.board.apply_view(view)
        self.display.show(self.board)


def decode(text: str | bytes) -> dict[str, Any]:
    try:
        frame = json.loads(text)
    except ValueError:
        return {}
    return frame if isinstance(frame, dict) else {}
