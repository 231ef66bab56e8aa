// The results grid: one row per record, the input, then one column per model side by side.
// Record and model text is untrusted: it only ever reaches the page through textContent.

const KINDS = [
  { kind: "golden", label: "⭐ Golden", title: "Mark golden", className: "golden-button" },
  { kind: "fixed", label: "✏️ Fix", title: "Fix this answer", className: "fix-button" },
  { kind: "wrong", label: "❌ Wrong", title: "Flag as wrong", className: "wrong-button" },
];

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** Whitespace differences alone do not make two answers differ (same rule as the gateway). */
export function normalise(text) {
  return text.split(/\s+/).filter(Boolean).join(" ");
}

function outputsDiffer(results) {
  const texts = results.filter((r) => !r.error).map((r) => normalise(r.output_text));
  return texts.length >= 2 && new Set(texts).size > 1;
}

/** The record's own other fields ("years: 7"), as text; null when it has none. */
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
  /** onAnnotate(recordId, modelId, kind, fixedText?) is called when a button is pressed. */
  constructor(root, { onAnnotate, modelName }) {
    this.root = root;
    this.onAnnotate = onAnnotate;
    this.modelName = modelName;
    this.clear();
  }

  clear() {
    this.models = [];
    this.rows = new Map(); // record id -> { tr, record, cells: Map(model id -> td) }
    this.early = new Map(); // record id -> live results that arrived before the record's row
    this.table = el("table", "grid");
    this.headRow = el("tr");
    this.headRow.append(el("th", "index-col", "#"), el("th", "input-col", "Input"));
    this.table.createTHead().append(this.headRow);
    this.body = this.table.createTBody();
    this.root.replaceChildren(this.table);
  }

  /** Renders a results page ({models, records}) below what is already shown. */
  addPage(view) {
    view.models.forEach((m) => this.ensureModel(m));
    for (const record of view.records) {
      if (!this.rows.has(record.record_id)) this.addRow(record);
    }
  }

  get recordCount() {
    return this.rows.size;
  }

  /** How many shown records have answers that differ between models. */
  get differingCount() {
    let count = 0;
    for (const row of this.rows.values()) if (row.tr.classList.contains("differs")) count += 1;
    return count;
  }

  ensureModel(modelId) {
    if (this.models.includes(modelId)) return;
    this.models.push(modelId);
    const th = el("th", "model-col", this.modelName(modelId));
    th.dataset.modelId = modelId;
    th.title = modelId;
    th.scope = "col";
    this.headRow.append(th);
    for (const row of this.rows.values()) row.tr.append(this.makeCell(row, modelId));
  }

  addRow(record) {
    const tr = el("tr");
    tr.dataset.recordId = record.record_id;
    const row = { tr, record, cells: new Map() };
    row.record.results = row.record.results || {};
    row.record.annotations = row.record.annotations || {};
    tr.append(el("td", "index-col", String(record.index + 1)), this.inputCell(record));
    for (const modelId of this.models) tr.append(this.makeCell(row, modelId));
    this.rows.set(record.record_id, row);
    this.body.append(tr);
    this.refreshDiffers(row);
    for (const result of this.early.get(record.record_id) || []) this.applyResult(result);
    this.early.delete(record.record_id);
  }

  inputCell(record) {
    const td = el("td", "input-col");
    if (record.input.messages) {
      for (const message of record.input.messages) {
        const line = el("div", "message");
        line.append(el("span", "role", message.role), el("span", "content", message.content));
        td.append(line);
      }
    } else {
      td.append(el("div", "prompt", record.input.prompt ?? ""));
    }
    const metadata = metadataList(record.metadata);
    if (metadata) td.append(metadata);
    return td;
  }

  makeCell(row, modelId) {
    const td = el("td", "cell");
    td.dataset.recordId = row.record.record_id;
    td.dataset.modelId = modelId;
    row.cells.set(modelId, td);
    this.renderCell(row, modelId);
    return td;
  }

  renderCell(row, modelId) {
    const td = row.cells.get(modelId);
    const result = row.record.results[modelId];
    const annotation = row.record.annotations[modelId];
    td.replaceChildren();
    delete td.dataset.annotation;
    td.classList.remove("differs", "failed");
    if (!result) return; // empty until this model answers
    if (result.error) {
      td.classList.add("failed");
      td.append(el("div", "error", `error: ${result.error}`));
    } else {
      td.append(el("div", "output", result.output_text));
    }
    const meta = [`${result.output_tokens} tok`, `${Math.round(result.latency_ms)} ms`, result.finish_reason];
    td.append(el("div", "meta", meta.filter(Boolean).join(" · ")));
    if (annotation) {
      td.dataset.annotation = annotation.kind;
      if (annotation.kind === "fixed") td.append(el("div", "fixed-output", annotation.output_text));
      if (annotation.note) td.append(el("div", "note", annotation.note));
    }
    td.append(this.actions(row, modelId, annotation));
  }

  actions(row, modelId, annotation) {
    const bar = el("div", "actions");
    for (const { kind, label, title, className } of KINDS) {
      const button = el("button", `annotate ${className}`, label);
      button.type = "button";
      button.title = title;
      button.setAttribute("aria-label", title);
      button.setAttribute("aria-pressed", String(annotation?.kind === kind));
      button.addEventListener("click", () => {
        if (kind === "fixed") this.openFixEditor(row, modelId);
        else this.onAnnotate(row.record.record_id, modelId, kind);
      });
      bar.append(button);
    }
    return bar;
  }

  openFixEditor(row, modelId) {
    const td = row.cells.get(modelId);
    if (td.querySelector(".fix-editor")) return;
    const result = row.record.results[modelId];
    const current = row.record.annotations[modelId];
    const form = el("form", "fix-editor");
    const area = el("textarea");
    area.value = current?.kind === "fixed" ? current.output_text : result?.output_text || "";
    area.rows = 4;
    area.setAttribute("aria-label", "Corrected answer");
    const save = el("button", "save-fix", "Save fix");
    save.type = "submit";
    const cancel = el("button", "cancel-fix", "Cancel");
    cancel.type = "button";
    cancel.addEventListener("click", () => form.remove());
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      if (area.value.trim()) this.onAnnotate(row.record.record_id, modelId, "fixed", area.value);
    });
    form.append(area, save, cancel);
    td.append(form);
    area.focus();
  }

  /** A live result from the WebSocket; one for a row still loading is applied when the row arrives. */
  applyResult(result) {
    const row = this.rows.get(result.record_id);
    if (!row) {
      const waiting = this.early.get(result.record_id) || [];
      waiting.push(result);
      this.early.set(result.record_id, waiting);
      return;
    }
    this.ensureModel(result.model_id);
    row.record.results[result.model_id] = result;
    this.renderCell(row, result.model_id);
    this.refreshDiffers(row);
  }

  applyAnnotation(recordId, annotation) {
    const row = this.rows.get(recordId);
    if (!row) return;
    row.record.annotations[annotation.model_id] = annotation;
    row.record.annotation_version = Math.max(row.record.annotation_version || 0, annotation.version);
    this.renderCell(row, annotation.model_id);
    this.refreshDiffers(row);
  }

  /** A mark removed (undo), here or by someone else: the record moves on to version. */
  clearAnnotation(recordId, modelId, version) {
    const row = this.rows.get(recordId);
    if (!row) return;
    delete row.record.annotations[modelId];
    row.record.annotation_version = Math.max(row.record.annotation_version || 0, version);
    this.renderCell(row, modelId);
    this.refreshDiffers(row);
  }

  annotationVersion(recordId) {
    return this.rows.get(recordId)?.record.annotation_version ?? 0;
  }

  /** The run whose answer the cell shows: a mark names it, so the answer stored is the one seen. */
  shownRun(recordId, modelId) {
    return this.rows.get(recordId)?.record.results[modelId]?.run_id ?? "";
  }

  refreshDiffers(row) {
    const present = this.models.filter((m) => row.record.results[m]);
    const differs = outputsDiffer(present.map((m) => row.record.results[m]));
    row.tr.classList.toggle("differs", differs);
    for (const m of present) {
      if (!row.record.results[m].error) row.cells.get(m).classList.toggle("differs", differs);
    }
  }
}
