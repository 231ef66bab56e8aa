// The workbench page: datasets (left), models and results (center), runs (right).

import { ApiError, api, currentToken, forgetToken, query, readToken, setToken } from "./api.js";
import { ResultsGrid } from "./grid.js";
import { connectLive } from "./live.js";

const PAGE_SIZE = 1000;
const ACTIVE = new Set(["queued", "running"]);

const $ = (id) => document.getElementById(id);

const state = {
  datasets: [],
  models: new Map(), // model id -> model
  runs: new Map(), // run id -> run
  datasetId: "",
  loadGeneration: 0,
  grid: null,
  total: 0, // records in the selected dataset
  live: false,
};

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function notify(message) {
  const notice = $("notice");
  notice.textContent = message;
  notice.hidden = !message;
}

function describe(error) {
  return error instanceof ApiError ? error.detail : String(error);
}

function handleAuth(error) {
  if (error instanceof ApiError && error.status === 401) {
    forgetToken();
    showTokenForm("The token was refused; enter the right one.");
    return true;
  }
  return false;
}

// ---- datasets ---------------------------------------------------------------------------------

async function loadDatasets() {
  const { datasets } = await api("/admin/datasets");
  state.datasets = datasets;
  renderDatasets();
}

function renderDatasets() {
  const list = $("dataset-list");
  list.replaceChildren();
  if (!state.datasets.length) list.append(el("li", "muted", "No datasets yet: upload one."));
  for (const dataset of state.datasets) {
    const item = el("li");
    const button = el("button", "dataset-button");
    button.type = "button";
    button.dataset.datasetId = dataset.dataset_id;
    if (dataset.dataset_id === state.datasetId) button.setAttribute("aria-current", "true");
    const uploaded = el("time", "meta uploaded", formatTime(dataset.registered_at));
    if (dataset.registered_at) uploaded.dateTime = dataset.registered_at;
    button.append(
      el("span", "name", dataset.name),
      el("span", "meta dataset-id", dataset.dataset_id),
      uploaded,
      el("span", "meta", `${dataset.record_count} records · ${dataset.format}`),
    );
    button.addEventListener("click", () => selectDataset(dataset.dataset_id));
    item.append(button);
    list.append(item);
  }
}

function datasetName(datasetId) {
  return state.datasets.find((d) => d.dataset_id === datasetId)?.name || datasetId;
}

function count(n, word) {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

function formatTime(iso) {
  if (!iso) return "";
  const moment = new Date(iso);
  return Number.isNaN(moment.getTime()) ? iso : `uploaded ${moment.toLocaleString()}`;
}

/** What validation found, line by line: "line 3 · prompt: must be a string", then "and N more". */
function problemList({ problems = [], more = 0, line_word: lineWord = "line" }) {
  const list = el("ul", "problems");
  for (const { line, field, reason } of problems) {
    list.append(el("li", undefined, `${lineWord} ${line}${field ? ` · ${field}` : ""}: ${reason}`));
  }
  if (more > 0) list.append(el("li", "more", `and ${more} more`));
  return list;
}

async function upload(file) {
  const status = $("upload-status");
  status.className = "status";
  status.textContent = `Uploading ${file.name}…`;
  const form = new FormData();
  form.append("file", file, file.name);
  const skipInvalid = $("skip-invalid").checked;
  try {
    const path = `/admin/datasets/upload${query({ skip_invalid: skipInvalid ? "true" : "" })}`;
    const { dataset, already_registered: already, report, detail } = await api(path, { method: "POST", form });
    if (already) {
      status.replaceChildren(`Already uploaded: ${detail}. Nothing new was stored.`);
    } else {
      status.replaceChildren(`Registered ${dataset.name}: ${count(dataset.record_count, "record")}.`);
      if (report) {
        const skipped = `Skipped ${count(report.skipped_records, "invalid record")}:`;
        status.append(el("p", "skipped", skipped), problemList(report));
      }
    }
    await loadDatasets();
    await selectDataset(dataset.dataset_id);
  } catch (error) {
    if (handleAuth(error)) return;
    status.className = "status error";
    const problems = error instanceof ApiError && error.body.problems?.length;
    // With problems, the list says it all: the detail repeats them as one paragraph.
    status.replaceChildren(problems ? "Upload refused:" : `Upload refused: ${describe(error)}`);
    if (problems) {
      status.append(problemList(error.body));
      if (!skipInvalid) status.append(el("p", "hint", "Nothing was registered. Fix these, or tick “Skip invalid records”."));
    }
  } finally {
    $("upload-input").value = "";
  }
}

function wireUpload() {
  const input = $("upload-input");
  const zone = $("drop-zone");
  input.addEventListener("change", () => {
    if (input.files.length) upload(input.files[0]);
  });
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("dragging");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    const file = event.dataTransfer?.files?.[0];
    if (file) upload(file);
  });
}

// ---- models and runs --------------------------------------------------------------------------

async function loadModels() {
  const { models } = await api("/admin/models");
  state.models = new Map(models.map((m) => [m.model_id, m]));
  const list = $("model-list");
  list.replaceChildren();
  for (const model of models) {
    const item = el("li");
    const label = el("label");
    const box = el("input");
    box.type = "checkbox";
    box.name = "model";
    box.value = model.model_id;
    box.addEventListener("change", updateRunButton);
    label.append(box, el("span", "name", model.display_name), el("span", "meta", model.backend), workerBadge(model));
    item.append(label);
    list.append(item);
  }
  updateRunButton();
}

/** What serves the model now: its workers' states (loading, ready, busy), or that none does. */
function workerBadge(model) {
  const workers = model.workers || [];
  if (!workers.length) return el("span", "worker-state none", "no worker");
  const states = [...new Set(workers.map((w) => w.state))];
  const badge = el("span", `worker-state ${states.join(" ")}`, `${workers.length} worker${workers.length === 1 ? "" : "s"}: ${states.join(", ")}`);
  const detail = workers.map((w) => w.detail).filter(Boolean).join("; ");
  if (detail) badge.title = detail;
  return badge;
}

/** The run options the user filled in: sampling fields (others: the model's defaults) and a schema. */
function runOptions() {
  const sampling = {};
  for (const [field, id] of [
    ["temperature", "sampling-temperature"],
    ["top_p", "sampling-top-p"],
    ["max_tokens", "sampling-max-tokens"],
    ["seed", "sampling-seed"],
  ]) {
    const raw = $(id).value.trim();
    if (raw !== "") sampling[field] = Number(raw);
  }
  const options = {};
  if (Object.keys(sampling).length) options.sampling = sampling;
  const schema = $("json-schema").value.trim();
  if (schema) {
    try {
      options.json_schema = JSON.parse(schema);
    } catch (error) {
      throw new Error(`the JSON schema is not valid JSON: ${error.message}`);
    }
  }
  return options;
}

function modelName(modelId) {
  return state.models.get(modelId)?.display_name || modelId;
}

function selectedModels() {
  return [...document.querySelectorAll('#model-list input[name="model"]:checked')].map((box) => box.value);
}

function updateRunButton() {
  $("run-button").disabled = !state.datasetId || selectedModels().length === 0;
}

async function runSelected() {
  const status = $("run-status");
  const modelIds = selectedModels();
  status.className = "status";
  status.textContent = "Starting…";
  try {
    // One id per click: a retry of this very request (a lost answer) starts nothing twice.
    const requestId = crypto.randomUUID();
    const { runs, errors = [] } = await api("/admin/benchmarks/run", {
      method: "POST",
      json: { dataset_id: state.datasetId, model_ids: modelIds, request_id: requestId, ...runOptions() },
    });
    for (const run of runs) {
      state.runs.set(run.run_id, run);
      state.grid?.ensureModel(run.model_id);
    }
    status.replaceChildren(`Started ${runs.length} run${runs.length === 1 ? "" : "s"}.`);
    if (errors.length) {
      status.className = "status error";
      status.append(runErrorList(errors));
    }
    renderRuns();
  } catch (error) {
    if (handleAuth(error)) return;
    status.className = "status error";
    const errors = error instanceof ApiError ? error.body.errors || [] : [];
    status.replaceChildren(errors.length > 1 ? "Could not start any run." : `Could not start: ${describe(error)}`);
    if (errors.length > 1) status.append(runErrorList(errors));
  }
}

/** One line per model whose run did not start, with the gateway's reason (text only: never HTML). */
function runErrorList(errors) {
  const list = el("ul", "run-errors");
  for (const { model_id: modelId, detail, error } of errors) {
    list.append(el("li", undefined, `${modelName(modelId)}: ${detail || error}`));
  }
  return list;
}

async function loadRuns() {
  const requests = [api("/admin/benchmarks/active")];
  if (state.datasetId) requests.push(api(`/admin/benchmarks${query({ dataset_id: state.datasetId })}`));
  const replies = await Promise.all(requests);
  state.runs = new Map(replies.flatMap((r) => r.runs).map((run) => [run.run_id, run]));
  renderRuns();
}

let runsRefresh = 0;
function refreshRunsSoon() {
  clearTimeout(runsRefresh);
  runsRefresh = setTimeout(() => loadRuns().catch((error) => handleAuth(error) || notify(describe(error))), 300);
}

function formatDuration(seconds) {
  if (!Number.isFinite(seconds) || seconds <= 0) return "–";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

function renderRuns() {
  const list = $("runs");
  const runs = [...state.runs.values()]
    .filter((run) => ACTIVE.has(run.status) || run.dataset_id === state.datasetId)
    .sort((a, b) => ACTIVE.has(b.status) - ACTIVE.has(a.status) || (b.requested_at || "").localeCompare(a.requested_at || ""));
  list.replaceChildren();
  if (!runs.length) list.append(el("li", "muted", "No runs yet."));
  for (const run of runs) list.append(runCard(run));
}

function runCard(run) {
  const item = el("li", "run");
  item.dataset.runId = run.run_id;
  item.dataset.status = run.status;
  const head = el("div", "run-head");
  head.append(el("span", "name", modelName(run.model_id)), el("span", `badge ${run.status}`, run.status));
  const bar = el("progress");
  bar.max = Math.max(run.total, 1);
  bar.value = run.done;
  const numbers = el("div", "run-numbers");
  numbers.append(
    el("span", "done", `${run.done}/${run.total}`),
    el("span", "speed", `${run.tokens_per_second.toFixed(1)} tok/s`),
    el("span", "eta", `ETA ${ACTIVE.has(run.status) ? formatDuration(run.eta_seconds) : "–"}`),
  );
  item.append(head, el("div", "meta", datasetName(run.dataset_id)), bar, numbers);
  if (run.waiting_for) item.append(el("div", "waiting", run.waiting_for));
  if (run.failed) item.append(el("div", "meta", `${run.failed} failed records`));
  if (run.error) item.append(el("div", "error", run.error));
  if (ACTIVE.has(run.status)) {
    const cancel = el("button", "cancel", "Cancel");
    cancel.type = "button";
    cancel.addEventListener("click", () => cancelRun(run));
    item.append(cancel);
  }
  item.append(reproducibility(run));
  return item;
}

/** What reproduces the run, folded away (text only). */
function reproducibility(run) {
  const details = el("details", "reproducibility");
  details.append(el("summary", undefined, "Reproduce"));
  const r = run.reproducibility || {};
  const s = r.sampling || {};
  const rows = [
    ["dataset sha256", r.dataset_sha256],
    ["model", `${r.model_path || ""} @ ${r.model_revision || "?"}`],
    ["weights sha256", r.weights_hash],
    ["chat template sha256", r.chat_template_hash],
    ["engine", r.engine],
    ["sampling", `temperature ${s.temperature}, top_p ${s.top_p}, max_tokens ${s.max_tokens}, seed ${s.seed}` +
      (r.sampling_explicit ? "" : " (records' own fields first)")],
    ["JSON schema", r.json_schema],
  ];
  const list = el("dl");
  for (const [name, value] of rows) {
    if (!value) continue;
    list.append(el("dt", undefined, name), el("dd", undefined, value));
  }
  details.append(list);
  return details;
}

async function cancelRun(run) {
  if (!window.confirm(`Cancel the run of ${modelName(run.model_id)}? Results recorded so far are kept.`)) return;
  try {
    const { run: cancelled } = await api(`/admin/benchmarks/${encodeURIComponent(run.run_id)}/cancel`, { method: "POST" });
    state.runs.set(cancelled.run_id, cancelled);
    renderRuns();
  } catch (error) {
    if (handleAuth(error)) return;
    notify(`Could not cancel: ${describe(error)}`);
  }
}

// ---- results ----------------------------------------------------------------------------------

async function selectDataset(datasetId) {
  state.datasetId = datasetId;
  renderDatasets();
  updateRunButton();
  const link = $("export-link");
  link.href = `/admin/export/${encodeURIComponent(datasetId)}${query({ format: "jsonl", token: currentToken() })}`;
  link.removeAttribute("aria-disabled");
  $("results-dataset").textContent = `· ${datasetName(datasetId)}`;
  $("results").dataset.datasetId = datasetId;
  await Promise.all([loadResults(), loadRuns()]).catch((error) => {
    if (handleAuth(error)) return;
    $("results-summary").textContent = `Could not load the results: ${describe(error)}`;
  });
}

async function loadResults() {
  if (!state.datasetId) return;
  const generation = ++state.loadGeneration;
  const grid = new ResultsGrid($("results"), { onAnnotate: annotate, modelName });
  state.grid = grid;
  const summary = $("results-summary");
  summary.textContent = "Loading…";
  state.stats = null;
  api(`/admin/workbench/stats${query({ dataset_id: state.datasetId })}`)
    .then((stats) => {
      if (generation !== state.loadGeneration) return;
      state.stats = stats;
      renderSummary();
    })
    .catch(() => {}); // the counts are a courtesy; the grid is what matters
  let offset = 0;
  let total = 0;
  do {
    const view = await api(
      `/admin/workbench/results${query({ dataset_id: state.datasetId, offset, limit: PAGE_SIZE })}`,
    );
    if (generation !== state.loadGeneration) return; // another dataset was chosen meanwhile
    grid.addPage(view);
    total = view.total;
    offset += view.records.length;
    if (!view.records.length) break;
  } while (offset < total);
  state.total = total;
  renderSummary();
}

function renderSummary() {
  const grid = state.grid;
  if (!grid) return;
  const differing = grid.differingCount;
  const counts = state.stats
    ? ` · ${state.stats.golden} golden · ${state.stats.fixed} fixed · ${state.stats.wrong} wrong · ` +
      `${state.stats.needs_review} need review`
    : "";
  $("results-summary").textContent =
    `${state.total} records · ${grid.models.length} models · ${differing} with differing answers${counts}`;
}

async function annotate(recordId, modelId, kind, fixedText) {
  // The ids travel in the body, never in the URL: a record id such as "a/" or "%2F" stays exact.
  const body = {
    kind,
    dataset_id: state.datasetId,
    record_id: recordId,
    model_id: modelId,
    expected_version: state.grid.annotationVersion(recordId),
  };
  const annotator = $("annotator-name").value.trim();
  if (annotator) body.annotator = annotator; // who marked it: recorded on the mark and in its history
  const runId = state.grid.shownRun(recordId, modelId);
  if (runId) body.run_id = runId;
  if (kind === "fixed") body.fixed_text = fixedText;
  try {
    const { annotation } = await api("/admin/annotations", { method: "POST", json: body });
    state.grid.applyAnnotation(recordId, annotation);
    notify("");
  } catch (error) {
    if (handleAuth(error)) return;
    if (error instanceof ApiError && error.status === 409) {
      notify(`Someone else changed this record meanwhile; reloaded. (${error.detail})`);
      await loadResults();
      return;
    }
    notify(`Could not save: ${describe(error)}`);
  }
}

// ---- live updates -----------------------------------------------------------------------------

function onFrame(frame) {
  if (frame.type === "result") {
    if (frame.result.dataset_id === state.datasetId) {
      state.grid?.applyResult(frame.result);
      renderSummary();
    }
  } else if (frame.type === "progress") {
    const run = state.runs.get(frame.progress.run_id);
    if (!run) {
      refreshRunsSoon();
      return;
    }
    const { done, total, failed, tokens_per_second, eta_seconds } = frame.progress;
    Object.assign(run, { done, total, failed, tokens_per_second, eta_seconds });
    if (run.status === "queued") run.status = "running";
    const card = document.querySelector(`#runs [data-run-id="${CSS.escape(run.run_id)}"]`);
    if (card) card.replaceWith(runCard(run));
    else renderRuns();
  } else if (frame.type === "run") {
    refreshRunsSoon();
  } else if (frame.type === "stats") {
    if (frame.dataset_id !== state.datasetId) return;
    state.stats = frame.stats;
    renderSummary();
  } else if (frame.type === "annotation") {
    // Someone's mark (here, in another tab, or pulled from Label Studio) shows at once.
    if (frame.dataset_id !== state.datasetId || !state.grid) return;
    if (frame.event === "AnnotationCleared") state.grid.clearAnnotation(frame.record_id, frame.model_id, frame.version);
    else state.grid.applyAnnotation(frame.record_id, frame);
  }
}

function onLiveState(liveState) {
  const badge = $("live-status");
  badge.dataset.state = liveState;
  badge.textContent = liveState;
  if (liveState === "unauthorized") {
    state.live = false;
    showTokenForm("The token was refused; enter the right one.");
  }
}

function onLiveOpen() {
  // Anything may have happened while disconnected: refetch what is on screen.
  const reloads = [loadRuns()];
  if (state.datasetId) reloads.push(loadResults());
  Promise.all(reloads).catch((error) => handleAuth(error) || notify(describe(error)));
}

// ---- start ------------------------------------------------------------------------------------

function showTokenForm(message) {
  $("workbench").hidden = true;
  $("token-form").hidden = false;
  notify(message || "");
}

async function start() {
  $("token-form").hidden = true;
  $("workbench").hidden = false;
  try {
    await Promise.all([loadDatasets(), loadModels(), loadRuns()]);
  } catch (error) {
    if (!handleAuth(error)) notify(describe(error));
    return;
  }
  if (state.live) return;
  state.live = true;
  connectLive({ token: currentToken(), onFrame, onOpen: onLiveOpen, onState: onLiveState });
}

function main() {
  wireUpload();
  // The name is the browser's to remember (until users log in, it is what the page says it is).
  const name = $("annotator-name");
  name.value = localStorage.getItem("wb-annotator") || "";
  name.addEventListener("change", () => localStorage.setItem("wb-annotator", name.value.trim()));
  $("run-button").addEventListener("click", runSelected);
  $("export-link").addEventListener("click", (event) => {
    if (!state.datasetId) event.preventDefault();
  });
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    setToken($("token-input").value.trim());
    start();
  });
  if (readToken()) start();
  else showTokenForm("");
}

main();
