// The results grid, virtualised: one row per record of the current view, one column per model.
// Only the rows on screen (and a few around them) are in the DOM, and pages of records are fetched
// as they scroll into view, so 10,000 records cost what one screen costs.
// Record and model text is untrusted: it only ever reaches the page through textContent.

import { answerView } from "./answers.js";
import { el } from "./dom.js";

export const PAGE_SIZE = 200; // records per request while scrolling
const OVERSCAN = 6; // rows kept beyond each edge of the screen
const MAX_EARLY = 5000; // records whose live results wait for their page
const SVG = "http://www.w3.org/2000/svg";

// Icons drawn as SVG paths: emoji need a colour font that a server's browser may not have.
const ICONS = {
  golden: "M12 2.5l2.9 6.1 6.6.8-4.9 4.6 1.3 6.6L12 17.3l-5.9 3.3 1.3-6.6-4.9-4.6 6.6-.8z",
  fixed: "M4 17.2V20h2.8l9.9-9.9-2.8-2.8zM19.7 7.1a1 1 0 000-1.4l-1.4-1.4a1 1 0 00-1.4 0l-1.3 1.3 2.8 2.8z",
  wrong: "M6.4 5L5 6.4 10.6 12 5 17.6 6.4 19l5.6-5.6 5.6 5.6 1.4-1.4-5.6-5.6L19 6.4 17.6 5 12 10.6z",
  undo: "M12.5 8c-2.6 0-5 1-6.9 2.6L2 7v9h9l-3.6-3.6c1.4-1.2 3.2-1.9 5.1-1.9 3.5 0 6.5 2.3 7.6 5.5l2.4-.8C21 11.5 17.1 8 12.5 8z",
};

export const KINDS = [
  { kind: "golden", key: "g", title: "Mark golden", className: "golden-button" },
  { kind: "fixed", key: "f", title: "Fix this answer", className: "fix-button" },
  { kind: "wrong", key: "w", title: "Flag as wrong", className: "wrong-button" },
];


const drawnIcons = new Map(); // name -> an SVG element to clone: cloning is cheaper than building

export function icon(name) {
  let drawn = drawnIcons.get(name);
  if (!drawn) {
    drawn = document.createElementNS(SVG, "svg");
    drawn.setAttribute("viewBox", "0 0 24 24");
    drawn.setAttribute("aria-hidden", "true");
    drawn.classList.add("icon");
    const path = document.createElementNS(SVG, "path");
    path.setAttribute("d", ICONS[name]);
    drawn.append(path);
    drawnIcons.set(name, drawn);
  }
  return drawn.cloneNode(true);
}

/** Whitespace differences alone do not make two answers differ (until the server's verdict arrives). */
function normalise(text) {
  return text.split(/\s+/).filter(Boolean).join(" ");
}

function outputsDiffer(results) {
  const texts = results.filter((r) => !r.error).map((r) => normalise(r.output_text));
  return texts.length >= 2 && new Set(texts).size > 1;
}

/** The record's input as text: the prompt, or the chat turns one per line. */
export function inputText(record) {
  if (record.input.messages) return record.input.messages.map((m) => `${m.role}: ${m.content}`).join("\n");
  return record.input.prompt ?? "";
}

function metadataList(metadata) {
  const entries = Object.entries(metadata || {});
  if (!entries.length) return null;
  const list = el("ul", "metadata");
  list.setAttribute("aria-label", "Metadata");
  for (const [key, value] of entries) {
    const entry = el("li");
    const text = typeof value === "string" ? value : JSON.stringify(value);
    entry.append(el("span", "key", key), ": ", el("span", "value", text));
    list.append(entry);
  }
  return list;
}

export class ResultsGrid {
  /**
   * root: the scroll container (#results).
   * fetchPage(offset, limit) -> Promise<{models, records, total}>: a page of the current view.
   * onAction(action, position, modelId): a cell's button was pressed ("golden", "fixed", "wrong", "undo").
   * onOpen(position): a row asked for its detail view (double click).
   * modelName(modelId): the display name of a model.
   */
  constructor(root, { fetchPage, onAction, onOpen, onCursor, modelName }) {
    this.root = root;
    this.fetchPage = fetchPage;
    this.onAction = onAction;
    this.onOpen = onOpen;
    this.onCursor = onCursor || (() => {});
    this.modelName = modelName;
    this.generation = 0;
    this.liveApplied = 0;
    this.liveDuplicates = 0;
    this.liveKeys = new Set(); // run and record of every live result, to notice one arriving twice
    this.root.dataset.liveApplied = "0";
    this.root.dataset.liveDuplicates = "0";
    this.scheduled = false;
    this.root.addEventListener("scroll", () => this.scheduleRender(), { passive: true });
    window.addEventListener("resize", () => this.scheduleRender());
    this.reset([], 0);
  }

  /** Starts over on a new view (dataset, filter or search): total records, models known so far. */
  reset(models, total) {
    this.generation += 1;
    this.models = [...models];
    this.total = total;
    this.records = new Array(total); // position -> record, filled page by page
    this.positions = new Map(); // record id -> position
    this.pages = new Map(); // page number -> "loading" | "loaded"
    this.stale = new Set(); // pages whose records changed live (their disagreement is being refreshed)
    this.early = new Map(); // record id -> live results for a record whose page is not loaded yet
    this.liveKeys.clear(); // a new view: the duplicate check starts over (and stays bounded)
    this.shown = new Map(); // position -> row element in the DOM
    this.cursor = total > 0 ? 0 : -1;
    this.column = 0;
    this.head = el("div", "grid-head");
    this.head.setAttribute("role", "row");
    this.body = el("div", "grid-body");
    this.body.setAttribute("role", "rowgroup");
    this.root.setAttribute("role", "grid");
    this.root.replaceChildren(this.head, this.body);
    this.root.scrollTop = 0;
    this.layout();
    this.scheduleRender();
  }

  /** Records of a page fetched by the caller (the first page comes with the view). */
  addPage(offset, view) {
    view.records.forEach((record, i) => this.place(offset + i, record));
    this.pages.set(Math.floor(offset / PAGE_SIZE), "loaded");
    const models = [...new Set([...this.models, ...view.models])];
    if (models.length > this.models.length) {
      this.models = models;
      this.layout(); // a new column: every row is drawn again
    }
    this.scheduleRender();
  }

  place(position, record) {
    record.results = record.results || {};
    record.annotations = record.annotations || {};
    const old = this.records[position];
    if (old && old.record_id !== record.record_id) this.positions.delete(old.record_id);
    if (old && old.record_id === record.record_id) {
      // A result shown live may not be in the read model that answered yet: keep it.
      for (const [modelId, result] of Object.entries(old.results)) {
        if (!record.results[modelId]) {
          record.results[modelId] = result;
          record.liveSince = old.liveSince;
        }
      }
    }
    this.records[position] = record;
    this.positions.set(record.record_id, position);
    for (const result of this.early.get(record.record_id) || []) {
      if (!record.results[result.model_id] || record.results[result.model_id].run_id !== result.run_id) {
        record.results[result.model_id] = result;
      }
    }
    this.early.delete(record.record_id);
  }

  /** The rows' height in pixels (--row-height in style.css), read once per layout: reading styles costs. */
  get rowHeight() {
    return this.height;
  }

  layout() {
    this.height = parseFloat(getComputedStyle(this.root).getPropertyValue("--row-height")) || 150;
    this.root.style.setProperty("--models", String(Math.max(this.models.length, 1)));
    this.root.setAttribute("aria-rowcount", String(this.total));
    this.body.style.height = `${this.total * this.rowHeight}px`;
    const cells = [el("div", "index-col", "#"), el("div", "input-col", "Input")];
    this.models.forEach((modelId, i) => {
      const th = el("div", "model-col");
      th.dataset.modelId = modelId;
      th.title = `${modelId} (key ${i + 1})`;
      th.append(el("span", "key-hint", String(i + 1)), el("span", undefined, this.modelName(modelId)));
      cells.push(th);
    });
    for (const cell of cells) cell.setAttribute("role", "columnheader");
    this.head.replaceChildren(...cells);
    for (const row of this.shown.values()) row.remove();
    this.shown.clear();
  }

  ensureModel(modelId) {
    if (this.models.includes(modelId)) return;
    this.models.push(modelId);
    this.layout();
    this.scheduleRender();
  }

  scheduleRender() {
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => {
      this.scheduled = false;
      this.render();
    });
  }

  /** The positions on screen, first to last. */
  visibleRange() {
    const height = this.rowHeight;
    const top = Math.max(0, this.root.scrollTop - this.head.offsetHeight);
    const first = Math.floor(top / height);
    const last = Math.min(this.total - 1, Math.ceil((top + this.root.clientHeight) / height));
    return [first, last];
  }

  render() {
    const [first, last] = this.visibleRange();
    const from = Math.max(0, first - OVERSCAN);
    const to = Math.min(this.total - 1, last + OVERSCAN);
    for (const [position, row] of this.shown) {
      if (position < from || position > to) {
        row.remove();
        this.shown.delete(position);
      }
    }
    for (let position = from; position <= to; position += 1) {
      const record = this.records[position];
      const row = this.shown.get(position);
      if (row && row.dataset.recordId === (record?.record_id ?? "")) continue;
      const fresh = this.makeRow(position, record);
      if (row) row.replaceWith(fresh);
      else this.body.append(fresh);
      this.shown.set(position, fresh);
    }
    this.loadAround(from, to);
  }

  loadAround(from, to) {
    if (this.total === 0) return;
    for (let page = Math.floor(from / PAGE_SIZE); page <= Math.floor(to / PAGE_SIZE); page += 1) {
      if (!this.pages.has(page)) this.load(page).catch(() => {}); // asked again on the next scroll
    }
  }

  async load(page) {
    const generation = this.generation;
    this.pages.set(page, "loading");
    try {
      const view = await this.fetchPage(page * PAGE_SIZE, PAGE_SIZE);
      if (generation !== this.generation) return; // another view meanwhile
      this.addPage(page * PAGE_SIZE, view);
      for (const position of this.shown.keys()) {
        if (Math.floor(position / PAGE_SIZE) === page) this.redraw(position);
      }
    } catch (error) {
      if (generation === this.generation) this.pages.delete(page); // asked again on the next scroll
      throw error;
    }
  }

  makeRow(position, record) {
    const row = el("div", "row");
    row.setAttribute("role", "row");
    row.setAttribute("aria-rowindex", String(position + 1));
    row.style.transform = `translateY(${position * this.rowHeight}px)`;
    row.dataset.position = String(position);
    if (!record) {
      row.classList.add("loading");
      row.append(el("div", "index-col", String(position + 1)), el("div", "input-col muted", "Loading…"));
      return row;
    }
    row.dataset.recordId = record.record_id;
    if (position === this.cursor) row.classList.add("current");
    row.addEventListener("click", (event) => {
      if (event.target.closest("button")) return;
      const cell = event.target.closest("[data-model-id]");
      this.moveTo(position, cell ? this.models.indexOf(cell.dataset.modelId) : this.column);
    });
    row.addEventListener("dblclick", () => this.onOpen(position));
    const index = el("div", "index-col", String(record.index + 1));
    index.setAttribute("role", "rowheader");
    row.append(index, this.inputCell(record));
    const differs = this.recordDiffers(record);
    row.classList.toggle("differs", differs);
    this.models.forEach((modelId, i) => row.append(this.cell(record, modelId, differs, position === this.cursor && i === this.column)));
    return row;
  }

  recordDiffers(record) {
    if (record.disagreement && !record.liveSince) return record.disagreement.differs;
    return outputsDiffer(this.models.map((m) => record.results[m]).filter(Boolean));
  }

  inputCell(record) {
    const cell = el("div", "input-col");
    cell.setAttribute("role", "gridcell");
    if (record.input.messages) {
      for (const message of record.input.messages) {
        const line = el("div", "message");
        line.append(el("span", "role", message.role), el("span", "content", message.content));
        cell.append(line);
      }
    } else {
      cell.append(el("div", "prompt", record.input.prompt ?? ""));
    }
    const metadata = metadataList(record.metadata);
    if (metadata) cell.append(metadata);
    return cell;
  }

  cell(record, modelId, differs, picked) {
    const cell = el("div", "cell");
    cell.setAttribute("role", "gridcell");
    cell.dataset.recordId = record.record_id;
    cell.dataset.modelId = modelId;
    if (picked) cell.classList.add("picked");
    const result = record.results[modelId];
    const annotation = record.annotations[modelId];
    if (!result) return cell; // empty until this model answers
    if (result.error) {
      cell.classList.add("failed");
      cell.append(el("div", "error", `error: ${result.error}`));
    } else {
      if (differs) cell.classList.add("differs");
      const paths = record.liveSince ? [] : record.disagreement?.differing_paths || [];
      cell.append(answerView(result.output_text, paths, "output"));
    }
    const meta = [`${result.output_tokens} tok`, `${Math.round(result.latency_ms)} ms`, result.finish_reason];
    cell.append(el("div", "meta", meta.filter(Boolean).join(" · ")));
    if (annotation) {
      cell.dataset.annotation = annotation.kind;
      if (annotation.kind === "fixed") cell.append(el("div", "fixed-output", annotation.output_text));
      if (annotation.note) cell.append(el("div", "note", annotation.note));
    }
    cell.append(this.actions(record, modelId, annotation));
    return cell;
  }

  actions(record, modelId, annotation) {
    const bar = el("div", "actions");
    for (const { kind, key, title, className } of KINDS) {
      const button = el("button", `annotate ${className}`);
      button.type = "button";
      button.title = `${title} (${key})`;
      button.setAttribute("aria-label", title);
      button.setAttribute("aria-pressed", String(annotation?.kind === kind));
      button.append(icon(kind));
      button.addEventListener("click", () => this.onAction(kind, this.positions.get(record.record_id), modelId));
      bar.append(button);
    }
    if (annotation) {
      const undo = el("button", "annotate undo-button");
      undo.type = "button";
      undo.title = "Undo this mark (u)";
      undo.setAttribute("aria-label", "Undo this mark");
      undo.append(icon("undo"));
      undo.addEventListener("click", () => this.onAction("undo", this.positions.get(record.record_id), modelId));
      bar.append(undo);
    }
    return bar;
  }

  /** Draws one row again if it is on screen. */
  redraw(position) {
    const row = this.shown.get(position);
    if (!row) return;
    const fresh = this.makeRow(position, this.records[position]);
    row.replaceWith(fresh);
    this.shown.set(position, fresh);
  }

  // ---- the cursor (keyboard review) ----------------------------------------------------------

  moveTo(position, column = this.column) {
    if (this.total === 0) return;
    const before = this.cursor;
    this.cursor = Math.max(0, Math.min(this.total - 1, position));
    this.column = Math.max(0, Math.min(Math.max(this.models.length - 1, 0), column));
    this.scrollToCursor();
    if (before !== this.cursor) this.redraw(before);
    this.redraw(this.cursor);
    this.onCursor(this.cursor);
  }

  scrollToCursor() {
    const height = this.rowHeight;
    const top = this.cursor * height;
    const head = this.head.offsetHeight;
    const view = this.root.clientHeight - head;
    if (top < this.root.scrollTop) this.root.scrollTop = top;
    else if (top + height > this.root.scrollTop + view) this.root.scrollTop = top + height - view;
    this.render();
  }

  /** The record and model under the cursor (record undefined while its page loads). */
  current() {
    return { position: this.cursor, record: this.records[this.cursor], modelId: this.models[this.column] };
  }

  record(position) {
    return this.records[position];
  }

  /** The record with this id, when its page is loaded. */
  byId(recordId) {
    const position = this.positions.get(recordId);
    return position === undefined ? undefined : this.records[position];
  }

  // ---- live changes -----------------------------------------------------------------------------

  /** A live result from the WebSocket. Counted in data-live-applied (the page benchmark reads it). */
  applyResult(result) {
    this.ensureModel(result.model_id);
    this.liveApplied += 1;
    this.root.dataset.liveApplied = String(this.liveApplied);
    const key = `${result.run_id}\u0000${result.record_id}`;
    if (this.liveKeys.has(key)) {
      this.liveDuplicates += 1; // the same answer twice: the live stream repeated itself
      this.root.dataset.liveDuplicates = String(this.liveDuplicates);
    }
    this.liveKeys.add(key);
    const position = this.positions.get(result.record_id);
    if (position === undefined) {
      // Kept for a page that may be on its way; bounded, as most such records are simply not in
      // this view (a filter) or not fetched yet, and their page brings them when it comes.
      const waiting = this.early.get(result.record_id) || [];
      waiting.push(result);
      this.early.delete(result.record_id);
      this.early.set(result.record_id, waiting);
      if (this.early.size > MAX_EARLY) this.early.delete(this.early.keys().next().value);
      return;
    }
    const record = this.records[position];
    record.results[result.model_id] = result;
    record.liveSince = Date.now(); // its disagreement is stale until the page is fetched again
    this.stale.add(Math.floor(position / PAGE_SIZE));
    this.redraw(position);
  }

  /** Fetches again the pages on screen that changed live (the server's verdict on what differs). */
  async refreshStale() {
    const [first, last] = this.visibleRange();
    const visible = new Set();
    for (let p = Math.floor(first / PAGE_SIZE); p <= Math.floor(last / PAGE_SIZE); p += 1) visible.add(p);
    const pages = [...this.stale];
    this.stale.clear();
    for (const page of pages) {
      if (visible.has(page)) await this.load(page);
      else this.pages.delete(page); // fetched again when it scrolls into view
    }
  }

  /** Fetches the pages on screen again and forgets the others (fetched again when they scroll into
   * sight): after a reconnect that could not replay what was missed. Scroll and cursor stay. */
  async reloadVisible() {
    const [first, last] = this.visibleRange();
    this.pages.clear();
    this.stale.clear();
    for (let page = Math.floor(first / PAGE_SIZE); page <= Math.floor(Math.max(last, 0) / PAGE_SIZE); page += 1) {
      if (page * PAGE_SIZE < this.total) await this.load(page);
    }
  }

  applyAnnotation(recordId, annotation) {
    const position = this.positions.get(recordId);
    if (position === undefined) return;
    const record = this.records[position];
    record.annotations[annotation.model_id] = annotation;
    record.annotation_version = Math.max(record.annotation_version || 0, annotation.version);
    this.redraw(position);
  }

  /** A mark removed (undo), here or by someone else: the record moves on to version. */
  clearAnnotation(recordId, modelId, version) {
    const position = this.positions.get(recordId);
    if (position === undefined) return;
    const record = this.records[position];
    delete record.annotations[modelId];
    record.annotation_version = Math.max(record.annotation_version || 0, version);
    this.redraw(position);
  }

  annotationVersion(recordId) {
    const position = this.positions.get(recordId);
    return position === undefined ? 0 : this.records[position].annotation_version ?? 0;
  }

  /** The run whose answer the cell shows: a mark names it, so the answer stored is the one seen. */
  shownRun(recordId, modelId) {
    const position = this.positions.get(recordId);
    return position === undefined ? "" : this.records[position].results[modelId]?.run_id ?? "";
  }
}
