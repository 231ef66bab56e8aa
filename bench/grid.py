"""The workbench page in real headless Chromium: first screen, scrolling, live results.

    python bench/grid.py [--records 10000] [--live-records 2000] [--scroll-frames 1500]

Setup (not timed): the services and the gateway on loopback (no inference worker, no vLLM), a
models file of three models, a dataset of RECORDS candidate records uploaded through the gateway,
and a finished run of each model over it. No engine runs: each run is the events the inference
service and a worker would append (docs/events.md), written straight to the event stream with the
event-log library: RunRequested and RunStarted on wb.runs.<run_id>, one ResultRecorded per record
on wb.results.<run_id> (append_many, 2,000 at a time), RunCompleted, with a real run's message ids.
A third of the answers are JSON verdicts whose fields differ between models, the rest plain text,
some the same from every model, a few failed. The annotations service is stopped while they are
appended and started again after (it catches up twice as fast at start; see set_up), then the
script waits until the results view, the runs and the stats show every record with 3 models.

Measured inside the page, Chromium at 1440x900 (the first two in one fresh browser context, the
third in another):
  first_render_ms      open {url}/#login=...&dataset=<id>; from navigation start to the first
                       animation frame at which every row visible in #results has its three model
                       cells answered (an .output or .error in each): an rAF poll installed with
                       add_init_script reads performance.now().
  scroll_p95_frame_ms  #results scrolled from top to bottom in about --scroll-frames animation
                       frames (the same number of pixels each frame: 6 to 7 rows of 10,000 at the
                       default), each frame's duration from rAF timestamps; the 95th percentile.
  live_rows_per_s      a second dataset of LIVE_RECORDS records, opened with no results; this process
                       then appends one model run's ResultRecorded events as fast as NATS takes
                       them. The page counts the results it applied in #results' data-live-applied;
                       a MutationObserver times the first and the last change: applied per second.
Aims: first render under 1,000 ms, p95 frame under 16.7 ms (60 frames per second).

The page's DOM contract: #results is the grid's scroll container and carries data-live-applied;
rows are #results [role="row"][data-record-id] (only the visible ones need be in the DOM); cells
are #results [data-record-id][data-model-id] and hold an .output (or .error) element once the
model answered; the page opens the dataset named by #dataset=<id> itself. A page that does not
keep it stops the script with a message saying what was missing.
"""

import argparse
import asyncio
import json
import math
import os
import random
import statistics
import sys
import tempfile
import time
import tomllib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

# This folder holds eventlog.py, named like the library: keep it from shadowing the package.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import httpx  # noqa: E402
from playwright.async_api import Browser, BrowserContext, Page, async_playwright  # noqa: E402
from playwright.async_api import Error as PlaywrightError  # noqa: E402

from devstack import Stack, StackPorts  # noqa: E402
from devstack.stack import SERVICES  # noqa: E402
from eventlog import DEFAULT_STREAM, JetStreamEventStore, NewEvent, to_timestamp, token  # noqa: E402
from workbench.inference.v1 import inference_pb2 as pb  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
VIEWPORT = {"width": 1440, "height": 900}
FIRST_SCREEN_TIMEOUT_S = 60
CATCH_UP_TIMEOUT_S = 240
SCROLL_TIMEOUT_S = 90
LIVE_TIMEOUT_S = 60
LIVE_STALL_S = 20

# The stack's models file: the GPU example's three models, which the gateway knows; no worker ever loads them.
MODELS_FILE = REPO / "config" / "models.gpu.example.toml"
MODELS: list[dict[str, Any]] = tomllib.loads(MODELS_FILE.read_text())["models"]
APPEND_BATCH = 2000  # within the event store's 4,000 publishes in flight
TOPICS = ("backend", "machine learning", "frontend", "data engineering", "site reliability", "security")
FACTS = (
    "led a team through a migration nobody else wanted to own",
    "shipped a storage engine rewrite on time",
    "mentored four juniors who now lead projects of their own",
    "knows distributed consensus deeply",
    "writes clear design documents and follows them",
    "switched careers after a decade in finance",
    "contributed patches to the Linux kernel scheduler",
    "tends to overengineer small tasks",
    "interviewed well on systems design but struggled with coding",
    "has never been on call",
    "built the observability stack of a fast-growing startup",
    "left two jobs within a year each",
)

# Installed before the page's own scripts in every fresh page: notes when the first screen is filled
# and counts the WebSockets that opened (the live test starts once the page listens).
FIRST_SCREEN_JS = """
(() => {
  const MODELS = %d;
  const bench = { firstScreenMs: null, socketsOpen: 0, watching: true };
  window.__gridBench = bench;
  const NativeSocket = window.WebSocket;
  window.WebSocket = class extends NativeSocket {
    constructor(...args) {
      super(...args);
      this.addEventListener("open", () => { bench.socketsOpen += 1; });
    }
  };
  function filled() {
    const root = document.getElementById("results");
    if (!root) return false;
    const box = root.getBoundingClientRect();
    const top = Math.max(box.top, 0);
    const bottom = Math.min(box.bottom, window.innerHeight);
    if (bottom <= top) return false;
    let visible = 0;
    for (const row of root.querySelectorAll('[role="row"][data-record-id]')) {
      const r = row.getBoundingClientRect();
      if (r.height === 0 || r.bottom <= top) continue;
      if (r.top >= bottom) {
        if (visible) break;
        continue;
      }
      visible += 1;
      const id = CSS.escape(row.dataset.recordId);
      const answered = new Set();
      for (const cell of root.querySelectorAll(`[data-record-id="${id}"][data-model-id]`)) {
        if (cell.querySelector(".output, .error")) answered.add(cell.dataset.modelId);
      }
      if (answered.size < MODELS) return false;
    }
    return visible > 0;
  }
  function poll() {
    if (!bench.watching) return;
    if (filled()) bench.firstScreenMs = performance.now();
    else requestAnimationFrame(poll);
  }
  requestAnimationFrame(poll);
})();
"""

# What the page shows when it did not fill its first screen: for the message.
DIAGNOSE_JS = """
() => {
  const root = document.getElementById("results");
  if (!root) return { results: false };
  return {
    results: true,
    rows: root.querySelectorAll('[role="row"][data-record-id]').length,
    anyRecordElements: root.querySelectorAll("[data-record-id]").length,
    answeredCells: root.querySelectorAll("[data-record-id][data-model-id] :is(.output, .error)").length,
    datasetId: root.dataset.datasetId || "",
    scrollable: root.scrollHeight > root.clientHeight,
    notice: document.getElementById("notice")?.textContent || "",
    summary: document.getElementById("results-summary")?.textContent || "",
    signedIn: document.getElementById("whoami-name")?.textContent || "",
  };
}
"""

# Scrolls #results from top to bottom in about `frames` animation frames (the same number of pixels
# each frame, from the height at the start); resolves with every frame's duration.
SCROLL_JS = """
async ({ frames, timeoutMs, lastRecordId }) => {
  const root = document.getElementById("results");
  const nextFrame = () => new Promise((resolve) => requestAnimationFrame(resolve));
  root.scrollTop = 0;
  // Until the grid's height holds still for 30 frames (a page still laying out its rows, or
  // measuring them, changes it), at most 10 s.
  let height = -1;
  for (let still = 0, waited = 0; still < 30 && waited < 600; waited += 1) {
    await nextFrame();
    still = root.scrollHeight === height ? still + 1 : 0;
    height = root.scrollHeight;
  }
  const pxPerFrame = Math.max(Math.ceil((height - root.clientHeight) / frames), 1);
  const deltas = [];
  let previous = await nextFrame();
  const began = previous;
  for (;;) {
    const bottom = root.scrollHeight - root.clientHeight;
    if (root.scrollTop >= bottom - 1 || previous - began > timeoutMs) break;
    root.scrollTop = Math.min(root.scrollTop + pxPerFrame, bottom);
    const now = await nextFrame();
    deltas.push(now - previous);
    previous = now;
  }
  const bottom = root.scrollHeight - root.clientHeight;
  await nextFrame();
  await nextFrame();
  const last = root.querySelector(`[role="row"][data-record-id="${CSS.escape(lastRecordId)}"]`);
  return {
    deltas,
    pxPerFrame,
    seconds: (previous - began) / 1000,
    scrollHeight: root.scrollHeight,
    reached: root.scrollTop >= bottom - 1 ? 1 : root.scrollTop / bottom,
    lastRowShown: last !== null,
  };
}
"""

# Times the page's live counter: the first and the latest change of #results' data-live-applied.
LIVE_WATCH_JS = """
() => {
  const count = () => Number(document.getElementById("results")?.dataset.liveApplied || 0);
  const live = { base: count(), applied: 0, first: null, last: null };
  window.__gridLive = live;
  new MutationObserver(() => {
    const applied = count() - live.base;
    if (applied <= live.applied) return;
    const at = performance.timeOrigin + performance.now();
    if (live.first === null) live.first = { at, applied };
    live.last = { at, applied };
    live.applied = applied;
  }).observe(document.body, { attributes: true, subtree: true, attributeFilter: ["data-live-applied"] });
}
"""


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(math.ceil(fraction * len(ordered)) - 1, 0)]


# ---- setup: datasets, and finished runs written as the events a worker appends --------------------


def records(prefix: str, count: int) -> list[dict[str, str]]:
    """Candidate records: {"id": "r00001", "prompt": ..., "topic": ...}."""
    rng = random.Random(prefix)
    made = []
    for i in range(1, count + 1):
        topic = rng.choice(TOPICS)
        facts = "; ".join(rng.sample(FACTS, rng.randint(1, 3)))
        prompt = f"Candidate {i}, {rng.randint(1, 25)} years in {topic}: {facts}. Should we hire them? Say why."
        made.append({"id": f"{prefix}{i:05d}", "prompt": prompt, "topic": topic})
    return made


def answer(record_index: int, model_index: int) -> tuple[str, str]:
    """(output_text, error) of one model for one record: a third JSON verdicts whose fields differ between
    models, the rest plain text of one to six sentences (the same from every model for one record in six),
    and every 500th record failed on the last model."""
    if model_index == len(MODELS) - 1 and record_index % 500 == 499:
        return "", "no answer within 600 s (WB_WORKER_GENERATION_TIMEOUT_S); aborted"
    if record_index % 3 == 0:
        rng = random.Random(f"{record_index}/{model_index}")
        verdict = {
            "recommendation": rng.choice(("hire", "pass")),
            "trajectory": rng.choice(("rising", "steady", "plateaued")),
            "confidence": round(rng.uniform(0.5, 0.99), 2),
            "reasons": rng.sample(FACTS, rng.randint(1, 3)),
        }
        return json.dumps(verdict), ""
    rng = random.Random(f"{record_index}" if record_index % 6 == 1 else f"{record_index}/{model_index}")
    sentences = [f"The candidate {rng.choice(FACTS)}." for _ in range(rng.randint(1, 6))]
    return " ".join([*sentences, rng.choice(("I would hire them.", "I would pass.", "Worth a second interview."))]), ""


@dataclass(frozen=True, slots=True)
class SeededRun:
    """One model's run over one dataset, as the events the inference service and a worker append
    (docs/events.md: subjects wb.runs.<run_id> and wb.results.<run_id>, the same message ids)."""

    run_id: str
    dataset: dict[str, Any]
    model_index: int
    requested_at: datetime

    @classmethod
    def new(cls, dataset: dict[str, Any], model_index: int, requested_at: datetime) -> "SeededRun":
        return cls("run_" + uuid.uuid4().hex[:12], dataset, model_index, requested_at)

    @property
    def model(self) -> dict[str, Any]:
        return MODELS[self.model_index]

    def started(self) -> list[NewEvent]:
        """RunRequested (from StartRun) and RunStarted (from the first worker's shard)."""
        subject = f"wb.runs.{self.run_id}"
        requested = pb.RunRequested(
            run_id=self.run_id,
            dataset_id=self.dataset["dataset_id"],
            model_id=self.model["id"],
            sampling=pb.SamplingParams(**self.model["sampling"]),
            record_count=self.dataset["record_count"],
            requested_at=to_timestamp(self.requested_at),
            dataset_sha256=self.dataset["sha256"],
            model_path=self.model["path"],
        )
        started = pb.RunStarted(
            run_id=self.run_id,
            worker="bench-grid",
            engine="none: events seeded by bench/grid.py",
            model_revision="main",
            started_at=to_timestamp(self.requested_at + timedelta(seconds=1)),
        )
        return [
            NewEvent(subject, requested, f"run:{self.run_id}", expected_sequence=0),
            NewEvent(subject, started, f"started:{self.run_id}"),
        ]

    def results(self, record_ids: list[str]) -> Iterator[NewEvent]:
        """One ResultRecorded per record, 20 ms apart by their own clock."""
        rng = random.Random(self.run_id)
        for index, record_id in enumerate(record_ids):
            text, error = answer(index, self.model_index)
            event = pb.ResultRecorded(
                run_id=self.run_id,
                dataset_id=self.dataset["dataset_id"],
                model_id=self.model["id"],
                record_id=record_id,
                output_text=text,
                finish_reason="error" if error else "stop",
                prompt_tokens=0 if error else rng.randint(40, 90),
                output_tokens=len(text.split()) * 4 // 3,
                latency_ms=rng.uniform(200.0, 4000.0),
                error=error,
                recorded_at=to_timestamp(self.requested_at + timedelta(seconds=2, milliseconds=20 * index)),
            )
            yield NewEvent(f"wb.results.{self.run_id}", event, f"result:{self.run_id}:{token(record_id)}")

    def completed(self, done: int, failed: int) -> NewEvent:
        at = to_timestamp(self.requested_at + timedelta(seconds=3, milliseconds=20 * done))
        event = pb.RunCompleted(run_id=self.run_id, done=done, failed=failed, completed_at=at)
        return NewEvent(f"wb.runs.{self.run_id}", event, f"completed:{self.run_id}")


async def append_run(store: JetStreamEventStore, run: SeededRun, record_ids: list[str]) -> None:
    """A whole finished run on the log: requested, started, every result (APPEND_BATCH at a time), completed."""
    for new in run.started():
        await store.append(new)
    results = list(run.results(record_ids))
    for start in range(0, len(results), APPEND_BATCH):
        await store.append_many(results[start : start + APPEND_BATCH])
    failed = sum(1 for new in results if isinstance(new.event, pb.ResultRecorded) and new.event.error)
    await store.append(run.completed(len(results), failed))


# ---- the bench ----------------------------------------------------------------------------------


async def upload(api: httpx.AsyncClient, name: str, rows: list[dict[str, str]]) -> dict[str, Any]:
    response = await api.post(
        "/admin/datasets/upload",
        params={"name": name},
        content="".join(json.dumps(row) + "\n" for row in rows).encode(),
        headers={"Content-Type": "application/x-ndjson"},
    )
    if response.status_code != 201:
        raise SystemExit(f"the upload of {name} failed: {response.status_code} {response.text[:500]}")
    dataset: dict[str, Any] = response.json()["dataset"]
    return dataset


async def check_models(api: httpx.AsyncClient) -> None:
    response = await api.get("/admin/models")
    response.raise_for_status()
    known = [model["model_id"] for model in response.json()["models"]]
    if known != [model["id"] for model in MODELS]:
        raise SystemExit(f"the gateway knows the models {known}, not the bench's models file's")


async def seed(store: JetStreamEventStore, dataset: dict[str, Any], record_ids: list[str]) -> None:
    """A finished run of each model over the dataset, on the event log."""
    began = time.perf_counter()
    requested = datetime.now(UTC) - timedelta(hours=1)
    for index in range(len(MODELS)):  # a second apart: the grid's columns come in this order
        run = SeededRun.new(dataset, index, requested + timedelta(seconds=index))
        await append_run(store, run, record_ids)
    seconds = time.perf_counter() - began
    count = len(MODELS) * len(record_ids)
    print(f"appended {len(MODELS)} runs, {count:,} results, in {seconds:.1f} s ({count / seconds:,.0f} results/s)")


async def lacking(api: httpx.AsyncClient, dataset_id: str, count: int) -> str:
    """What the views still lack ("" when the results view, the runs and the stats all have every result)."""
    view = (await api.get("/admin/workbench/results", params={"dataset_id": dataset_id, "limit": 1})).json()
    if view.get("total") != count or len(view.get("models", [])) != len(MODELS):
        return f"the results view has {view.get('total')} records, models {view.get('models')}"
    runs = (await api.get("/admin/benchmarks", params={"dataset_id": dataset_id})).json()["runs"]
    if sorted((run["status"], run["done"]) for run in runs) != [("completed", count)] * len(MODELS):
        return "runs: " + ", ".join(f"{run['model_id']} {run['status']} {run['done']}" for run in runs)
    stats = (await api.get("/admin/workbench/stats", params={"dataset_id": dataset_id})).json()
    answered = {model: counts["total"] for model, counts in stats.get("by_model", {}).items()}
    if stats.get("total") != count or sorted(answered.values()) != [count] * len(MODELS):
        return f"the stats have {stats.get('total')} records, answered by model {answered}"
    return ""


async def wait_caught_up(api: httpx.AsyncClient, dataset_id: str, count: int) -> None:
    """Until the read models have applied every event (the services' projector lag on /health), then
    until the views show every result. The views are asked only then: they cost the services more."""
    began = told = time.monotonic()
    missing = "not asked yet"
    while time.monotonic() - began < CATCH_UP_TIMEOUT_S:
        health = (await api.get("/health")).json()
        lag = {name: state["projector_lag"] for name, state in health.get("read_models", {}).items()}
        if not any(lag.values()):
            missing = await lacking(api, dataset_id, count)
            if not missing:
                stats = (await api.get("/admin/workbench/stats", params={"dataset_id": dataset_id})).json()
                print(f"views complete: {stats['differing']:,} of {count:,} records differ between models")
                return
        elif time.monotonic() - told >= 15:
            behind = ", ".join(f"{name} {events:,}" for name, events in lag.items() if events)
            print(f"  read models still behind the log by (events): {behind}")
            told = time.monotonic()
        await asyncio.sleep(1.0)
    raise SystemExit(f"the read models did not catch up within {CATCH_UP_TIMEOUT_S} s; {missing}")


@dataclass(frozen=True, slots=True)
class Workbench:
    """What the page is opened on: the stack, its event log, the two datasets and their records."""

    stack: Stack
    store: JetStreamEventStore
    grid: dict[str, Any]
    grid_ids: list[str]
    live: dict[str, Any]
    live_ids: list[str]

    def page_url(self, dataset: dict[str, Any]) -> str:
        # A fresh one-time login link each time, as a user opens the page (the login is part of the figure).
        return f"{self.stack.login_link()}&dataset={dataset['dataset_id']}"


async def set_up(stack: Stack, store: JetStreamEventStore, api: httpx.AsyncClient, count: int, live: int) -> Workbench:
    """Both datasets uploaded, the first with every model's results in every read model."""
    await check_models(api)
    grid_rows, live_rows = records("r", count), records("s", live)
    grid = await upload(api, "grid-bench.jsonl", grid_rows)
    live_dataset = await upload(api, "grid-bench-live.jsonl", live_rows)
    print(f"uploaded {count:,} and {live:,} records")
    # The annotations service folds results into two projections that share one SQLite file: live,
    # they take turns at its lock (about 170 results/s here); caught up at start, one after the
    # other, they run twice as fast. Its read model is the same either way.
    await asyncio.to_thread(stack.stop, ("annotations",))
    await seed(store, grid, [row["id"] for row in grid_rows])
    began = time.monotonic()
    await asyncio.to_thread(stack.start, ("annotations",), CATCH_UP_TIMEOUT_S)
    print(f"the annotations service started again and caught up in {time.monotonic() - began:.1f} s")
    await wait_caught_up(api, grid["dataset_id"], count)
    ids = [row["id"] for row in grid_rows]
    return Workbench(stack, store, grid, ids, live_dataset, [row["id"] for row in live_rows])


async def open_page(browser: Browser, url: str) -> tuple[BrowserContext, Page]:
    """A fresh browser context (no cache, no storage) with the bench's probes, navigating to url."""
    context = await browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    await context.add_init_script(FIRST_SCREEN_JS % len(MODELS))
    page = await context.new_page()
    page.on("console", lambda message: print(f"page console: {message.type}: {message.text}"))
    await page.goto(url, wait_until="commit")
    return context, page


async def until_true(page: Page, expression: str, within_s: float) -> bool:
    """Whether a JavaScript expression became true in the page within within_s, asked every 100 ms.

    Not page.wait_for_function: its predicate runs through eval() inside the page, which the page's
    Content-Security-Policy forbids (no 'unsafe-eval'); page.evaluate goes through the debugger."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            if await page.evaluate(expression):
                return True
        except PlaywrightError:  # a navigation under way: its document is not there yet
            pass
        await asyncio.sleep(0.1)
    return False


async def first_screen(page: Page) -> float:
    """Milliseconds from navigation start until the first screen is filled; stops the bench if never."""
    if not await until_true(page, "window.__gridBench?.firstScreenMs != null", FIRST_SCREEN_TIMEOUT_S):
        seen = await page.evaluate(DIAGNOSE_JS)
        raise SystemExit(
            f"the page never filled its first screen within {FIRST_SCREEN_TIMEOUT_S} s: every row visible in "
            f'#results ([role="row"][data-record-id]) needs {len(MODELS)} cells ([data-record-id][data-model-id]) '
            f"with an .output or .error. The page showed: {seen}. Does it open the dataset named by "
            "#dataset=<id> and keep the DOM contract in bench/grid.py's docstring?"
        ) from None
    return float(await page.evaluate("window.__gridBench.firstScreenMs"))


async def scroll(page: Page, frames: int, last_record_id: str) -> list[float]:
    """Every frame's duration (ms) while #results scrolls from top to bottom."""
    outcome = await page.evaluate(
        SCROLL_JS, {"frames": frames, "timeoutMs": SCROLL_TIMEOUT_S * 1000, "lastRecordId": last_record_id}
    )
    deltas: list[float] = outcome["deltas"]
    if not deltas:
        raise SystemExit("#results did not scroll: it must be the grid's scroll container (overflow: auto, a height)")
    median, slow = statistics.median(deltas), sum(1 for d in deltas if d > 25)
    print(
        f"scrolled {outcome['scrollHeight']:,} px, {outcome['pxPerFrame']:,} px a frame, {outcome['seconds']:.1f} s: "
        f"{len(deltas):,} frames, median {median:.1f} ms, max {max(deltas):.1f} ms, {slow:,} over 25 ms"
    )
    if outcome["reached"] < 1:
        print(f"  stopped after {SCROLL_TIMEOUT_S} s, {outcome['reached']:.1%} of the way down: frames are that slow")
    elif not outcome["lastRowShown"]:
        raise SystemExit(f"at the bottom of #results the last record's row ({last_record_id}) is not shown")
    return deltas


async def live_rate(browser: Browser, bench: Workbench) -> float:
    """Results per second the page applies while one run's results are appended as fast as NATS takes them."""
    context, page = await open_page(browser, bench.page_url(bench.live))
    try:
        shown = (
            "window.__gridBench?.socketsOpen > 0 && "
            "document.querySelector('#results [role=row][data-record-id]') !== null"
        )
        if not await until_true(page, shown, FIRST_SCREEN_TIMEOUT_S):
            seen = await page.evaluate(DIAGNOSE_JS)
            raise SystemExit(
                f"the page did not show the live dataset's rows with its WebSocket open within "
                f"{FIRST_SCREEN_TIMEOUT_S} s; it showed: {seen}"
            ) from None
        await page.wait_for_load_state("networkidle")
        await page.evaluate("window.__gridBench.watching = false")  # no first screen to wait for here
        await page.evaluate(LIVE_WATCH_JS)
        run = SeededRun.new(bench.live, 0, datetime.now(UTC))
        for new in run.started():
            await bench.store.append(new)
        await asyncio.sleep(1.0)  # the run's own frames, and the page's refetch of its runs, pass first
        events = list(run.results(bench.live_ids))
        appended_at = time.time() * 1000
        began = time.perf_counter()
        await bench.store.append_many(events)
        append_s = time.perf_counter() - began
        print(f"appended {len(events):,} results in {append_s:.2f} s ({len(events) / append_s:,.0f}/s)")
        await bench.store.append(run.completed(len(events), 0))
        state = await wait_applied(page, len(events))
    finally:
        await context.close()
    first, last = state["first"], state["last"]
    if first is None:
        raise SystemExit(
            f"the page applied no live result within {LIVE_STALL_S} s: it must count them in "
            "#results' data-live-applied (dataset.liveApplied)"
        )
    applied, first_at, last_at = int(last["applied"]), float(first["at"]), float(last["at"])
    outcome = "all applied" if applied >= len(events) else f"stopped waiting: {state['why']}"
    print(
        f"live: {applied:,} of {len(events):,} results applied ({outcome}); the first "
        f"{first_at - appended_at:,.0f} ms after the first append, the last {last_at - appended_at:,.0f} ms after"
    )
    if last_at <= first_at:  # all in one change: only the time since the first append tells a rate
        return applied / max(last_at - appended_at, 1.0) * 1000
    return (applied - int(first["applied"])) / (last_at - first_at) * 1000


async def wait_applied(page: Page, count: int) -> dict[str, Any]:
    """The page's live counter once it reached count, stalled for LIVE_STALL_S, or LIVE_TIMEOUT_S passed."""
    began = progress_at = time.monotonic()
    seen = -1
    while True:
        state: dict[str, Any] = await page.evaluate("window.__gridLive")
        now = time.monotonic()
        if state["applied"] != seen:
            progress_at, seen = now, state["applied"]
        if seen >= count:
            return {**state, "why": ""}
        if now - progress_at > LIVE_STALL_S:
            return {**state, "why": f"none applied for {LIVE_STALL_S} s"}
        if now - began > LIVE_TIMEOUT_S:
            return {**state, "why": f"timeout after {LIVE_TIMEOUT_S} s"}
        await asyncio.sleep(0.2)


async def measure(stack: Stack, count: int, live: int, frames: int) -> None:
    headers = {"Authorization": f"Bearer {stack.token}"}
    store = await JetStreamEventStore.connect(stack.nats_url, stream=DEFAULT_STREAM, name="bench-grid")
    try:
        async with httpx.AsyncClient(base_url=stack.url, headers=headers, timeout=120) as api:
            bench = await set_up(stack, store, api, count, live)
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
            environment = f"Chromium {browser.version}, {os.cpu_count()} CPUs, viewport 1440x900"
            context, page = await open_page(browser, bench.page_url(bench.grid))
            first_ms = await first_screen(page)
            print(f"first screen filled {first_ms:,.0f} ms after navigation start")
            await page.wait_for_load_state("networkidle")
            deltas = await scroll(page, frames, bench.grid_ids[-1])
            await context.close()
            rate = await live_rate(browser, bench)
            await browser.close()
    finally:
        await store.close()
    print(f"environment: {environment}")
    print("aims: first render under 1,000 ms, p95 frame under 16.7 ms")
    print(f"first_render_ms: {first_ms:.0f}")
    print(f"scroll_p95_frame_ms: {percentile(deltas, 0.95):.1f}")
    print(f"live_rows_per_s: {rate:.0f}")


def main(count: int, live: int, frames: int) -> None:
    if not Path(CHROMIUM).exists():
        raise SystemExit("Chromium is missing: make chromium (apt-get install -y chromium)")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        stack = Stack(REPO, folder / "var", StackPorts.free(), models_file=MODELS_FILE)
        try:
            stack.start(names=(*SERVICES, "gateway"))
            print(f"stack up at {stack.url} (no inference worker)")
            asyncio.run(measure(stack, count, live, frames))
        finally:
            stack.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--live-records", type=int, default=2_000)
    parser.add_argument("--scroll-frames", type=int, default=1_500, help="frames for the whole scroll (25 s at 60/s)")
    args = parser.parse_args()
    main(args.records, args.live_records, args.scroll_frames)
    sys.exit(0)
