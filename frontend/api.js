// HTTP calls to the gateway; the page's session cookie (HttpOnly: no script can read it) says who
// calls. Errors carry the server's own detail.

/** Takes #login=<code> (a one-time login link) out of the address bar; returns the code, or "". */
export function takeLoginCode() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const code = fragment.get("login") || "";
  if (code) {
    fragment.delete("login"); // the rest (the dataset shown) stays in the address
    const rest = fragment.toString();
    history.replaceState(null, "", location.pathname + location.search + (rest ? `#${rest}` : ""));
  }
  return code;
}

/** Exchanges a login code or an API token for the session cookie; answers {name, role}. */
export function logIn({ code = "", token = "" }) {
  return api("/auth/login", { method: "POST", json: code ? { code } : { token } });
}

export function logOut() {
  return api("/auth/logout", { method: "POST" });
}

export class ApiError extends Error {
  constructor(status, error, detail, body = {}) {
    super(detail || error || `HTTP ${status}`);
    this.status = status;
    this.error = error;
    this.detail = detail;
    this.body = body; // the whole error response, e.g. a per-model "errors" list
  }
}

/** fetch() against the API: JSON in (json: ...) or a FormData body (form: ...), JSON out. */
export async function api(path, { method = "GET", json, form } = {}) {
  const headers = {};
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form;
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body, credentials: "same-origin" });
  } catch (error) {
    throw new ApiError(0, "NETWORK", `the gateway cannot be reached (${error.message})`);
  }
  if (!response.ok) {
    let payload = {};
    try {
      payload = await response.json();
    } catch {
      // not JSON: a proxy's error page, say
    }
    throw new ApiError(
      response.status,
      payload.error || response.statusText,
      payload.detail || response.statusText,
      payload,
    );
  }
  return response.status === 204 ? null : response.json();
}

/** POSTs a FormData body with upload progress (onProgress(sent, total)); JSON out, ApiError on failure. */
export function uploadWithProgress(path, form, onProgress) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("POST", path);
    request.responseType = "text";
    request.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded, event.total);
    });
    request.addEventListener("error", () =>
      reject(new ApiError(0, "NETWORK", "the gateway cannot be reached (the upload was interrupted)")),
    );
    request.addEventListener("load", () => {
      let payload = {};
      try {
        payload = JSON.parse(request.responseText || "{}");
      } catch {
        // not JSON: a proxy's error page, say
      }
      if (request.status >= 200 && request.status < 300) resolve(payload);
      else {
        const detail = payload.detail || request.statusText;
        reject(new ApiError(request.status, payload.error || request.statusText, detail, payload));
      }
    });
    request.send(form);
  });
}

export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}
