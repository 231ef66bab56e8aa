// An answer as the page shows it: JSON objects and arrays formatted, with the fields where the
// models disagree highlighted; anything else as plain text. Text only: never parsed as HTML.

import { el } from "./dom.js";

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** The path of a child, written as the annotations service writes differing paths ("$.a", "$[0]", '$["a b"]'). */
function child(path, key) {
  if (typeof key === "number") return `${path}[${key}]`;
  return IDENTIFIER.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;
}

/** The answer as JSON when it is an object or an array; undefined otherwise. */
export function parseJsonAnswer(text) {
  const trimmed = text.trim();
  if (!trimmed.startsWith("{") && !trimmed.startsWith("[")) return undefined;
  try {
    const value = JSON.parse(trimmed);
    return value !== null && typeof value === "object" ? value : undefined;
  } catch {
    return undefined;
  }
}

function differsAt(path, paths) {
  return paths.some((p) => p === path || p.startsWith(`${path}.`) || p.startsWith(`${path}[`));
}

function render(value, path, paths, indent, into) {
  const pad = "  ".repeat(indent);
  if (value === null || typeof value !== "object") {
    const leaf = el("span", "json-value", JSON.stringify(value));
    if (paths.includes(path)) leaf.classList.add("diff");
    into.append(leaf);
    return;
  }
  const isArray = Array.isArray(value);
  const entries = isArray ? value.map((v, i) => [i, v]) : Object.entries(value);
  if (!entries.length) {
    into.append(isArray ? "[]" : "{}");
    return;
  }
  into.append(isArray ? "[\n" : "{\n");
  entries.forEach(([key, item], i) => {
    const at = child(path, key);
    const line = el("span", "json-line");
    if (differsAt(at, paths)) line.classList.add("diff-line");
    line.dataset.path = at;
    line.append(`${pad}  `);
    if (!isArray) line.append(el("span", "json-key", JSON.stringify(key)), ": ");
    render(item, at, paths, indent + 1, line);
    line.append(i < entries.length - 1 ? ",\n" : "\n");
    into.append(line);
  });
  into.append(`${pad}${isArray ? "]" : "}"}`);
}

/** An element showing the answer; paths: the differing fields' paths (from the server). */
export function answerView(text, paths = [], className = "output") {
  const value = parseJsonAnswer(text);
  if (value === undefined) return el("div", className, text);
  const pre = el("pre", `${className} json`);
  render(value, "$", paths, 0, pre);
  return pre;
}
