// The workbench page: datasets (left), models, review grid and exports (centre), counts and runs (right).
// Everything a model or a record says is text: it reaches the page through textContent only.

import { ApiError, api, logIn, logOut, query, takeLoginCode, uploadWithProgress } from "./api.js";
import { answerView } from "./answers.js";
import { el } from "./dom.js";
import { PAGE_SIZE, ResultsGrid, inputText } from "./grid.js";
import { connectLive } from "./live.js";

const ACTIVE = new Set(["queued", "running"]);
const RUN_EVENT_STATUS = {
  RunStarted: "running",
  RunCompleted: "completed",
  RunFailed: "failed",
  RunCancelled: "cancelled",
};
const POLL_MS = 2000; // the seed's polling of the active runs, when no WebSocket can be opened
const REFRESH_DIFFS_MS = 1000; // after live results settle, the server's verdict on what differs

const $ = (id) => document.getElementById(id);

const state = {
  datasets: [],
  models: new Map(), // model id -> model (with its workers)
  runs: new Map(), // run id -> run
  runStatus: new Map(), // run id -> the status its latest run event says
  datasetId: "",
  view: { filter: "", modelId: "", q: "" },
  loadGeneration: 0,
  grid: null,
  stats: null,
  total: 0, // records in the current view
  live: false,
  polling: 0,
  labelStudio: null,
};

function notify(message) {
  const notice = $("notice");
  notice.textContent = message;
  notice.hidden = !message;
}

function describe(error) {
  return error instanceof ApiError ? error.detail : String(error.message || error);
}

function handleAuth(error) {
  if (error instanceof ApiError && error.status === 401) {
    showLoginForm("Your session has ended or was revoked: open a new login link, or paste an API token.");
    return true;
  }
  return false;
}

function failed(error) {
  if (!handleAuth(error)) notify(describe(error));
}

function count(n, word) {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

// ---- the address: #dataset=... (and, once, #login=...) -------------------------------------------------------

function datasetFromAddress() {
  return new URLSearchParams(location.hash.slice(1)).get("dataset") || "";
}

function rememberDataset(datasetId) {
  const fragment = datasetId ? `#dataset=${encodeURIComponent(datasetId)}` : "";
  history.replaceState(null, "", location.pathname + location.search + fragment);
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
      el("span", "meta", `${count(dataset.record_count, "record")} · ${dataset.format}`),
    );
    button.addEventListener("click", () => selectDataset(dataset.dataset_id));
    item.append(button);
    if (dataset.dataset_id === state.datasetId) item.append(datasetTools(dataset));
    list.append(item);
  }
}

function datasetTools(dataset) {
  const tools = el("div", "dataset-tools");
  const rename = el("button", "rename-dataset", "Rename");
  rename.type = "button";
  rename.dataset.needs = "admin";
  rename.addEventListener("click", () => renameDataset(dataset));
  const remove = el("button", "delete-dataset", "Delete");
  remove.dataset.needs = "admin";
  remove.type = "button";
  remove.addEventListener("click", () => deleteDataset(dataset));
  tools.append(rename, remove);
  return tools;
}

async function renameDataset(dataset) {
  const name = window.prompt("New name of the dataset", dataset.name);
  if (name === null || !name.trim() || name.trim() === dataset.name) return;
  try {
    await api(`/admin/datasets/${encodeURIComponent(dataset.dataset_id)}`, { method: "PATCH", json: { name: name.trim() } });
    await loadDatasets();
    $("results-dataset").textContent = `· ${datasetName(state.datasetId)}`;
  } catch (error) {
    failed(error);
  }
}

async function deleteDataset(dataset) {
  const question =
    `Delete ${dataset.name} (${count(dataset.record_count, "record")})? Its records are removed; ` +
    "its runs, results and marks are hidden. This cannot be undone.";
  if (!window.confirm(question)) return;
  try {
    await api(`/admin/datasets/${encodeURIComponent(dataset.dataset_id)}`, { method: "DELETE" });
    if (state.datasetId === dataset.dataset_id) clearSelection();
    await loadDatasets();
  } catch (error) {
    failed(error);
  }
}

function clearSelection() {
  state.datasetId = "";
  state.loadGeneration += 1;
  rememberDataset("");
  $("results").dataset.datasetId = "";
  $("results-dataset").textContent = "";
  $("results-summary").textContent = "Select a dataset.";
  state.grid?.reset([], 0);
  state.stats = null;
  renderCounts();
  updateRunButton();
  updateExportLinks();
}

function datasetName(datasetId) {
  return state.datasets.find((d) => d.dataset_id === datasetId)?.name || datasetId;
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
  const progress = $("upload-progress");
  status.className = "status";
  status.textContent = `Uploading ${file.name}…`;
  progress.value = 0;
  progress.hidden = false;
  const form = new FormData();
  form.append("file", file, file.name);
  const skipInvalid = $("skip-invalid").checked;
  try {
    const path = `/admin/datasets/upload${query({ skip_invalid: skipInvalid ? "true" : "" })}`;
    const reply = await uploadWithProgress(path, form, (sent, total) => {
      progress.value = sent / total;
      if (sent >= total) status.textContent = `Checking ${file.name}…`;
    });
    const { dataset, already_registered: already, report, detail } = reply;
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
    progress.hidden = true;
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
  const ticked = new Set(selectedModels());
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
    box.checked = ticked.has(model.model_id);
    box.addEventListener("change", updateRunButton);
    label.append(box, el("span", "name", model.display_name), el("span", "meta", model.backend), workerBadge(model));
    item.append(label);
    list.append(item);
  }
  renderModelFilter();
  updateRunButton();
}

let modelsRefresh = 0;
function refreshModelsSoon() {
  clearTimeout(modelsRefresh);
  modelsRefresh = setTimeout(() => loadModels().catch(failed), 300);
}

/** What serves the model now: its workers' states (loading, ready, busy), or that none does. */
function workerBadge(model) {
  const workers = model.workers || [];
  if (!workers.length) return el("span", "worker-state none", "no worker");
  const states = [...new Set(workers.map((w) => w.state))];
  const badge = el("span", `worker-state ${states.join(" ")}`, `${count(workers.length, "worker")}: ${states.join(", ")}`);
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
    status.replaceChildren(`Started ${count(runs.length, "run")}.`);
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
  for (const [runId, status] of state.runStatus) {
    const run = state.runs.get(runId);
    if (run && ACTIVE.has(run.status) && !ACTIVE.has(status)) run.status = status; // the API is behind its events
  }
  renderRuns();
}

let runsRefresh = 0;
function refreshRunsSoon() {
  clearTimeout(runsRefresh);
  runsRefresh = setTimeout(() => loadRuns().catch(failed), 300);
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
  if (run.failed) item.append(el("div", "meta", `${count(run.failed, "failed record")}`));
  if (run.error) item.append(el("div", "error", run.error));
  if (ACTIVE.has(run.status)) {
    const cancel = el("button", "cancel", "Cancel");
    cancel.type = "button";
    cancel.dataset.needs = "admin";
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

// ---- results: the view, its pages and its counts ----------------------------------------------

async function selectDataset(datasetId) {
  if (datasetId !== state.datasetId) state.view = { filter: "", modelId: "", q: "" };
  state.datasetId = datasetId;
  rememberDataset(datasetId);
  renderDatasets();
  updateRunButton();
  updateExportLinks();
  $("filter").value = state.view.filter;
  $("search").value = state.view.q;
  $("results-dataset").textContent = `· ${datasetName(datasetId)}`;
  $("results").dataset.datasetId = datasetId;
  await Promise.all([loadResults(), loadRuns(), loadStats(), loadLabelStudio()]).catch((error) => {
    if (handleAuth(error)) return;
    $("results-summary").textContent = `Could not load the results: ${describe(error)}`;
  });
}

function viewQuery(offset, limit) {
  const { filter, modelId, q } = state.view;
  return query({ dataset_id: state.datasetId, filter, model_id: modelId, q, offset, limit });
}

function fetchPage(offset, limit) {
  return api(`/admin/workbench/results${viewQuery(offset, limit)}`);
}

/** Shows the current view from its first page; further pages load as they scroll into sight. */
async function loadResults() {
  if (!state.datasetId) return;
  const generation = ++state.loadGeneration;
  $("results-summary").textContent = "Loading…";
  const first = await fetchPage(0, PAGE_SIZE);
  if (generation !== state.loadGeneration) return; // another dataset or filter was chosen meanwhile
  state.total = first.total;
  state.grid.reset(first.models, first.total);
  state.grid.addPage(0, first);
  renderModelFilter();
  renderSummary();
}

async function loadStats() {
  if (!state.datasetId) return;
  const datasetId = state.datasetId;
  try {
    const stats = await api(`/admin/workbench/stats${query({ dataset_id: datasetId })}`);
    if (datasetId !== state.datasetId) return;
    state.stats = stats;
  } catch (error) {
    if (handleAuth(error)) return;
    state.stats = null; // the counts are a courtesy; the grid is what matters
  }
  renderCounts();
  renderSummary();
}

function renderSummary() {
  const grid = state.grid;
  if (!grid || !state.datasetId) return;
  const { filter, modelId, q } = state.view;
  const narrowed = filter || modelId || q;
  const of = narrowed && state.stats ? ` of ${state.stats.total}` : "";
  $("results-summary").textContent =
    `${count(state.total, "record")}${of} shown · ${count(grid.models.length, "model")}` +
    (grid.total ? " · j/k to move, ? for keys" : "");
}

const COUNT_ROWS = [
  ["total", "records"],
  ["differing", "differing"],
  ["needs_review", "need review"],
  ["golden", "golden"],
  ["fixed", "fixed"],
  ["wrong", "wrong"],
];

function renderCounts() {
  const list = $("counts");
  list.replaceChildren();
  const byModel = $("counts-by-model");
  byModel.replaceChildren();
  const stats = state.stats;
  if (!stats) {
    list.append(el("dt", undefined, "Select a dataset"), el("dd"));
    return;
  }
  for (const [field, label] of COUNT_ROWS) {
    const value = el("dd", undefined, String(stats[field] ?? 0));
    value.dataset.count = field;
    list.append(el("dt", undefined, label), value);
  }
  for (const [modelId, counts] of Object.entries(stats.by_model || {})) {
    byModel.append(
      el("div", undefined, `${modelName(modelId)}: ${counts.golden} golden · ${counts.fixed} fixed · ${counts.wrong} wrong`),
    );
  }
}

function renderModelFilter() {
  const select = $("filter-model");
  const chosen = state.view.modelId;
  const models = [...new Set([...(state.grid?.models || []), ...state.models.keys()])];
  select.replaceChildren(el("option", undefined, "any"));
  select.firstChild.value = "";
  for (const modelId of models) {
    const option = el("option", undefined, modelName(modelId));
    option.value = modelId;
    select.append(option);
  }
  select.value = chosen;
}

function wireFilters() {
  const apply = () => {
    state.view = { filter: $("filter").value, modelId: $("filter-model").value, q: $("search").value.trim() };
    loadResults().catch(failed);
  };
  $("filter").addEventListener("change", apply);
  $("filter-model").addEventListener("change", apply);
  let typing = 0;
  $("search").addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(apply, 300);
  });
  $("search").addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === "Escape") $("results").focus();
  });
}

// ---- marks ----------------------------------------------------------------------------------

function markBody(record, modelId) {
  const body = {
    dataset_id: state.datasetId,
    record_id: record.record_id,
    model_id: modelId,
    expected_version: state.grid.annotationVersion(record.record_id),
  };
  return body;
}

/** Records a mark; on a conflict, shows the other person's version and lets the user choose. */
async function annotate(record, modelId, kind, { fixedText, note } = {}) {
  // The ids travel in the body, never in the URL: a record id such as "a/" or "%2F" stays exact.
  const body = { ...markBody(record, modelId), kind };
  const runId = state.grid.shownRun(record.record_id, modelId);
  if (runId) body.run_id = runId;
  if (kind === "fixed") body.fixed_text = fixedText;
  if (note) body.note = note;
  try {
    const { annotation } = await api("/admin/annotations", { method: "POST", json: body });
    state.grid.applyAnnotation(record.record_id, annotation);
    notify("");
  } catch (error) {
    if (handleAuth(error)) return;
    if (error instanceof ApiError && error.status === 409) {
      await showConflict(record, modelId, { kind, fixedText, note }, error.detail);
      return;
    }
    notify(`Could not save: ${describe(error)}`);
  }
}

async function undo(record, modelId) {
  if (!record.annotations[modelId]) {
    notify(`Nothing to undo: ${modelName(modelId)}'s answer has no mark.`);
    return;
  }
  try {
    const { version } = await api("/admin/annotations/clear", { method: "POST", json: markBody(record, modelId) });
    state.grid.clearAnnotation(record.record_id, modelId, version);
    notify("");
  } catch (error) {
    if (handleAuth(error)) return;
    if (error instanceof ApiError && error.status === 409) {
      await showConflict(record, modelId, { kind: "clear" }, error.detail);
      return;
    }
    notify(`Could not undo: ${describe(error)}`);
  }
}

function describeMark(mark) {
  if (!mark) return "no mark";
  const by = mark.annotator ? ` by ${mark.annotator}` : "";
  const text = mark.kind === "fixed" ? `: ${mark.output_text}` : "";
  const note = mark.note ? ` (note: ${mark.note})` : "";
  return `${mark.kind}${by}${text}${note}`;
}

/** The record as stored now (its marks by someone else included), fetched by its id. */
async function freshRecord(recordId) {
  const view = await api(`/admin/workbench/results${query({ dataset_id: state.datasetId, q: recordId, limit: 1000 })}`);
  return view.records.find((r) => r.record_id === recordId);
}

async function showConflict(record, modelId, mine, detail) {
  const dialog = $("conflict-dialog");
  const body = $("conflict-body");
  let theirs;
  try {
    theirs = await freshRecord(record.record_id);
  } catch (error) {
    failed(error);
    return;
  }
  body.replaceChildren(
    el("p", undefined, `${modelName(modelId)} on record ${record.record_id}: ${detail}`),
    el("p", "conflict", `Theirs: ${describeMark(theirs?.annotations?.[modelId])}`),
    el("p", undefined, `Yours: ${mine.kind === "clear" ? "clear the mark" : describeMark({ ...mine, output_text: mine.fixedText || "" })}`),
  );
  // Whatever the choice, the grid now shows the stored version.
  if (theirs) {
    for (const [m, annotation] of Object.entries(theirs.annotations)) state.grid.applyAnnotation(theirs.record_id, { ...annotation, model_id: m });
    if (!theirs.annotations[modelId]) state.grid.clearAnnotation(theirs.record_id, modelId, theirs.annotation_version);
    const shown = state.grid.byId(theirs.record_id);
    if (shown) shown.annotation_version = theirs.annotation_version;
  }
  $("conflict-keep").onclick = () => dialog.close();
  $("conflict-apply").onclick = async () => {
    dialog.close();
    const current = state.grid.byId(record.record_id) || record;
    if (mine.kind === "clear") await undo(current, modelId);
    else await annotate(current, modelId, mine.kind, mine);
  };
  dialog.showModal();
}

/** The editor for a fix (prefilled with the answer) or a note; resolves with the text or null. */
function editText({ heading, context, text }) {
  const dialog = $("edit-dialog");
  $("edit-heading").textContent = heading;
  $("edit-context").textContent = context;
  const area = $("edit-text");
  area.value = text;
  return new Promise((resolve) => {
    const form = $("edit-form");
    const done = (value) => {
      form.onsubmit = null;
      area.onkeydown = null;
      dialog.onclose = null;
      if (dialog.open) dialog.close();
      resolve(value);
    };
    form.onsubmit = (event) => {
      event.preventDefault();
      done(area.value);
    };
    area.onkeydown = (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        done(area.value);
      }
    };
    dialog.onclose = () => done(null);
    dialog.showModal();
    area.focus();
  });
}

async function fix(record, modelId) {
  const current = record.annotations[modelId];
  const answer = record.results[modelId];
  if (!answer) {
    notify(`${modelName(modelId)} has not answered record ${record.record_id} yet.`);
    return;
  }
  const text = await editText({
    heading: "Fix the answer",
    context: `${modelName(modelId)} · record ${record.record_id}`,
    text: current?.kind === "fixed" ? current.output_text : answer.output_text,
  });
  if (text === null) return;
  if (!text.trim()) {
    notify("A fix needs the corrected answer; nothing was saved.");
    return;
  }
  await annotate(record, modelId, "fixed", { fixedText: text, note: current?.note });
}

async function addNote(record, modelId) {
  const current = record.annotations[modelId];
  if (!current) {
    notify("A note goes on a mark: mark the answer first (g, f or w), then add a note (n).");
    return;
  }
  const note = await editText({
    heading: "Note on the mark",
    context: `${modelName(modelId)} · record ${record.record_id} · ${current.kind}`,
    text: current.note || "",
  });
  if (note === null) return;
  await annotate(record, modelId, current.kind, { fixedText: current.output_text, note: note.trim() });
}

function onGridAction(action, position, modelId) {
  const record = state.grid.record(position);
  if (!record) return;
  state.grid.moveTo(position, state.grid.models.indexOf(modelId));
  if (action === "fixed") fix(record, modelId);
  else if (action === "undo") undo(record, modelId);
  else annotate(record, modelId, action);
}

// ---- the detail view ----------------------------------------------------------------------------

async function openDetail(position) {
  const record = state.grid.record(position);
  if (!record) return;
  const dialog = $("record-detail");
  $("detail-heading").textContent = `Record ${record.record_id} (#${record.index + 1})`;
  const body = $("detail-body");
  const answers = el("div", "answers");
  const paths = record.disagreement?.differing_paths || [];
  for (const modelId of state.grid.models) {
    const result = record.results[modelId];
    const block = el("section", "answer");
    block.dataset.modelId = modelId;
    block.append(el("h4", undefined, `${modelName(modelId)} · ${describeMark(record.annotations[modelId])}`));
    if (!result) block.append(el("p", "muted", "no answer yet"));
    else if (result.error) block.append(el("p", "error", `error: ${result.error}`));
    else block.append(answerView(result.output_text, paths, "output"));
    answers.append(block);
  }
  const metadata = Object.entries(record.metadata || {}).map(([k, v]) => `${k}: ${typeof v === "string" ? v : JSON.stringify(v)}`);
  const history = el("ol", "history");
  history.append(el("li", "muted", "Loading the history…"));
  body.replaceChildren(
    el("h4", undefined, "Input"),
    el("pre", "prompt", inputText(record)),
    ...(metadata.length ? [el("pre", "metadata", metadata.join("\n"))] : []),
    el("h4", undefined, "Answers"),
    answers,
    el("h4", undefined, "History of the marks"),
    history,
  );
  dialog.showModal();
  try {
    const { history: entries } = await api(
      `/admin/annotations/history${query({ dataset_id: state.datasetId, record_id: record.record_id })}`,
    );
    history.replaceChildren();
    if (!entries.length) history.append(el("li", "muted", "No marks yet."));
    for (const entry of entries) {
      const when = entry.at ? new Date(entry.at).toLocaleString() : "";
      const who = entry.annotator || "anonymous";
      const what = entry.change === "fixed" ? `fixed: ${entry.output_text}` : entry.change;
      const note = entry.note ? ` — note: ${entry.note}` : "";
      history.append(el("li", undefined, `${when} · ${who} · ${modelName(entry.model_id)} · ${what}${note} (${entry.source})`));
    }
  } catch (error) {
    history.replaceChildren(el("li", "error", `Could not load the history: ${describe(error)}`));
  }
}

// ---- the keyboard ---------------------------------------------------------------------------

function anyDialogOpen() {
  return [...document.querySelectorAll("dialog")].some((d) => d.open);
}

function onKey(event) {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const typing = event.target.closest("input, textarea, select, [contenteditable]");
  if (typing || anyDialogOpen() || !state.grid || !state.datasetId) return;
  const grid = state.grid;
  const key = event.key;
  if (key === "?") {
    $("keys-dialog").showModal();
  } else if (key === "/") {
    $("search").focus();
  } else if (key === "j" || key === "ArrowDown") {
    grid.moveTo(grid.cursor + 1);
  } else if (key === "k" || key === "ArrowUp") {
    grid.moveTo(grid.cursor - 1);
  } else if (/^[1-9]$/.test(key)) {
    const column = Number(key) - 1;
    if (column < grid.models.length) grid.moveTo(grid.cursor, column);
  } else if (key === "Enter") {
    openDetail(grid.cursor);
  } else if ("gfwun".includes(key) && key.length === 1) {
    const { record, modelId } = grid.current();
    if (!record || !modelId) return;
    if (key === "g") annotate(record, modelId, "golden");
    else if (key === "w") annotate(record, modelId, "wrong");
    else if (key === "f") fix(record, modelId);
    else if (key === "u") undo(record, modelId);
    else addNote(record, modelId);
  } else {
    return;
  }
  event.preventDefault();
}

// ---- exports and Label Studio -----------------------------------------------------------------

function updateExportLinks() {
  const kinds = $("export-kinds").value;
  for (const link of document.querySelectorAll("a.export-link")) {
    if (!state.datasetId) {
      link.href = "#";
      link.setAttribute("aria-disabled", "true");
      continue;
    }
    const params = { format: link.dataset.format, kinds }; // the session cookie goes along
    link.href = `/admin/export/${encodeURIComponent(state.datasetId)}${query(params)}`;
    link.removeAttribute("aria-disabled");
  }
}

async function loadLabelStudio() {
  const box = $("label-studio");
  if (!state.datasetId) {
    box.hidden = true;
    return;
  }
  const datasetId = state.datasetId;
  let status;
  try {
    status = await api(`/admin/label-studio/${encodeURIComponent(datasetId)}`);
  } catch (error) {
    if (handleAuth(error)) return;
    box.hidden = true; // the sync is optional: the rest of the page does not wait for it
    return;
  }
  if (datasetId !== state.datasetId) return;
  state.labelStudio = status;
  box.hidden = !status.configured;
  const link = status.link;
  $("label-studio-state").textContent = link ? `project ${link.project_id}, ${count(link.pushed_tasks, "task")} pushed` : "not linked";
  $("label-studio-link").hidden = Boolean(link);
  $("label-studio-push").hidden = !link;
  $("label-studio-pull").hidden = !link;
}

async function labelStudio(action) {
  const status = $("label-studio-status");
  status.className = "status";
  status.textContent = `${action === "link" ? "Linking" : action === "push" ? "Pushing" : "Pulling"}…`;
  try {
    const path = `/admin/label-studio/${encodeURIComponent(state.datasetId)}/${action}`;
    const reply = await api(path, { method: "POST", json: action === "link" ? {} : undefined });
    if (action === "link") status.textContent = `Linked to project ${reply.project_id}.`;
    else if (action === "push") status.textContent = `Pushed ${count(reply.pushed, "task")} (${reply.skipped} skipped).`;
    else status.textContent = `Recorded ${count(reply.recorded, "annotation")} (${reply.unchanged} unchanged).`;
    await loadLabelStudio();
  } catch (error) {
    if (handleAuth(error)) return;
    status.className = "status error";
    status.textContent = `Label Studio: ${describe(error)}`;
  }
}

// ---- live updates -----------------------------------------------------------------------------

let diffRefresh = 0;
/** At most once a second while results stream in (a debounce would wait for the run to end). */
function refreshDiffsSoon() {
  if (diffRefresh) return;
  diffRefresh = setTimeout(() => {
    diffRefresh = 0;
    state.grid?.refreshStale().catch(failed);
  }, REFRESH_DIFFS_MS);
}

function onFrame(frame) {
  if (frame.type === "result") {
    if (frame.result.dataset_id === state.datasetId && state.grid) {
      state.grid.applyResult(frame.result);
      refreshDiffsSoon();
    }
  } else if (frame.type === "progress") {
    const run = state.runs.get(frame.progress.run_id);
    if (!run) {
      refreshRunsSoon();
      return;
    }
    const { done, total, failed: failures, tokens_per_second, eta_seconds } = frame.progress;
    Object.assign(run, { done, total, failed: failures, tokens_per_second, eta_seconds });
    if (run.status === "queued") run.status = "running";
    const card = document.querySelector(`#runs [data-run-id="${CSS.escape(run.run_id)}"]`);
    if (card) card.replaceWith(runCard(run));
    else renderRuns();
  } else if (frame.type === "run") {
    // The event says how the run stands now; the runs API may answer from a read model a moment behind.
    const status = RUN_EVENT_STATUS[frame.event];
    if (status && frame.run_id) {
      state.runStatus.set(frame.run_id, status);
      const run = state.runs.get(frame.run_id);
      if (run) {
        run.status = status;
        if (typeof frame.done === "number") run.done = frame.done; // RunCompleted counts what was recorded
        if (frame.error) run.error = frame.error;
        renderRuns();
      }
    }
    refreshRunsSoon();
  } else if (frame.type === "worker") {
    refreshModelsSoon();
  } else if (frame.type === "stats") {
    if (frame.dataset_id !== state.datasetId) return;
    state.stats = frame.stats;
    renderCounts();
    renderSummary();
  } else if (frame.type === "annotation") {
    // Someone's mark (here, in another tab, or pulled from Label Studio) shows at once.
    if (frame.dataset_id !== state.datasetId || !state.grid) return;
    if (frame.event === "AnnotationCleared") state.grid.clearAnnotation(frame.record_id, frame.model_id, frame.version);
    else state.grid.applyAnnotation(frame.record_id, frame);
  }
}

const LIVE_WORDS = {
  live: "live",
  reconnecting: "reconnecting…",
  polling: "polling",
  unauthorized: "unauthorized",
};

function onLiveState(liveState) {
  const badge = $("live-status");
  badge.dataset.state = liveState;
  badge.textContent = LIVE_WORDS[liveState] || liveState;
  const banner = $("live-banner");
  banner.hidden = liveState === "live" || liveState === "unauthorized";
  if (liveState === "reconnecting") banner.textContent = "Disconnected from the workbench: reconnecting. What you see may be behind.";
  if (liveState === "polling") {
    banner.textContent = "Live updates are unavailable: the runs are refreshed every 2 seconds; results appear on reload.";
  }
  clearInterval(state.polling);
  state.polling = 0;
  if (liveState === "polling") state.polling = setInterval(() => loadRuns().catch(failed), POLL_MS);
  if (liveState === "unauthorized") {
    state.live = false;
    showLoginForm("Your session has ended or was revoked: open a new login link, or paste an API token.");
  }
}

function onLiveOpen({ resumed } = {}) {
  // Resumed: the socket replays the stored events that were missed; only the counts are fetched
  // again (their frames are not stored, so a page that fell behind or was away lost them).
  // Otherwise refetch what is on screen: the runs, the counts and the grid's visible pages (a
  // filtered view from its start, as what passes the filter may have changed).
  if (resumed) {
    if (state.datasetId) loadStats().catch(failed);
    return;
  }
  const reloads = [loadRuns(), loadModels()];
  if (state.datasetId) {
    const { filter, modelId, q } = state.view;
    reloads.push(loadStats(), filter || modelId || q ? loadResults() : state.grid.reloadVisible());
  }
  Promise.all(reloads).catch(failed);
}

// ---- start ------------------------------------------------------------------------------------

function showLoginForm(message) {
  $("workbench").hidden = true;
  $("login-form").hidden = false;
  $("whoami").hidden = true;
  notify(message || "");
}

function showWho(me) {
  $("whoami-name").textContent = `${me.name} (${me.role})`;
  $("whoami").hidden = false;
  // What the role may not do is hidden (the gateway refuses it anyway, with a 403 that says why).
  document.body.dataset.role = me.role;
}

/** Logs in with the one-time code in the address, if any, then asks who the session is. */
async function logInAndStart() {
  const code = takeLoginCode();
  try {
    if (code) showWho(await logIn({ code }));
    else showWho(await api("/admin/me"));
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      showLoginForm(code ? error.detail : "");
      return;
    }
    notify(describe(error));
    return;
  }
  notify("");
  start();
}

async function start() {
  $("login-form").hidden = true;
  $("workbench").hidden = false;
  try {
    await Promise.all([loadDatasets(), loadModels(), loadRuns()]);
  } catch (error) {
    failed(error);
    return;
  }
  const wanted = datasetFromAddress();
  if (wanted && state.datasets.some((d) => d.dataset_id === wanted)) await selectDataset(wanted);
  else renderCounts();
  if (state.live) return;
  state.live = true;
  connectLive({ onFrame, onOpen: onLiveOpen, onState: onLiveState });
}

function wireDialogs() {
  for (const button of document.querySelectorAll("dialog [data-close]")) {
    button.addEventListener("click", () => button.closest("dialog").close());
  }
  $("keys-button").addEventListener("click", () => $("keys-dialog").showModal());
  $("export-kinds").addEventListener("change", updateExportLinks);
  for (const link of document.querySelectorAll("a.export-link")) {
    link.addEventListener("click", (event) => {
      if (!state.datasetId) event.preventDefault();
    });
  }
  $("label-studio-link").addEventListener("click", () => labelStudio("link"));
  $("label-studio-push").addEventListener("click", () => labelStudio("push"));
  $("label-studio-pull").addEventListener("click", () => labelStudio("pull"));
}

function main() {
  wireUpload();
  wireFilters();
  wireDialogs();
  state.grid = new ResultsGrid($("results"), {
    fetchPage,
    onAction: onGridAction,
    onOpen: openDetail,
    modelName,
  });
  document.addEventListener("keydown", onKey);
  $("run-button").addEventListener("click", runSelected);
  $("login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = $("token-input");
    try {
      showWho(await logIn({ token: input.value.trim() }));
    } catch (error) {
      notify(describe(error));
      return;
    } finally {
      input.value = ""; // the token is not kept anywhere: the session cookie replaces it
    }
    notify("");
    start();
  });
  $("logout-button").addEventListener("click", async () => {
    await logOut().catch(() => {});
    location.reload();
  });
  logInAndStart();
}

main();
