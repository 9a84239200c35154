// The server's JSON API: the bearer token, error bodies, and which
// endpoints exist. The OpenAPI document is read first and every request is
// checked against it, so the dashboard never calls an endpoint this server
// does not have (no 404s in the console when talking to an older server).

const TOKEN_KEY = "andon.token";

/** An error answer, with the server's own message (`{"error": {code, message}}`). */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const routes = []; // [{method, template, re}]

function compile(template) {
  const parts = template.split(/(\{[^}]+\})/).map((p) =>
    p.startsWith("{") ? "[^/]+" : p.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  return new RegExp(`^${parts.join("")}$`);
}

export function getToken() {
  try {
    return localStorage.getItem(TOKEN_KEY) || "";
  } catch {
    return "";
  }
}

export function setToken(token) {
  if (token) localStorage.setItem(TOKEN_KEY, token);
  else localStorage.removeItem(TOKEN_KEY);
}

/** Reads /api/v1/openapi.json (public) and remembers every path and method. */
export async function loadSpec() {
  const resp = await fetch("/api/v1/openapi.json", { headers: { Accept: "application/json" } });
  if (!resp.ok) throw new ApiError(resp.status, "spec", `could not read the API description (${resp.status})`);
  const spec = await resp.json();
  routes.length = 0;
  for (const [template, ops] of Object.entries(spec.paths || {})) {
    for (const method of Object.keys(ops)) {
      routes.push({ method: method.toUpperCase(), template, re: compile(template) });
    }
  }
  return spec;
}

/** Whether the server documents `method template`, e.g. has("GET", "/api/v1/projects/{project}/gate"). */
export function has(method, template) {
  return routes.some((r) => r.method === method && r.template === template);
}

function documented(method, path) {
  const bare = path.split("?")[0];
  return routes.some((r) => r.method === method && r.re.test(bare));
}

/** Encodes one path segment. */
export const seg = (v) => encodeURIComponent(String(v));

/**
 * Calls the API. Resolves to parsed JSON (or null for an empty body);
 * rejects with ApiError carrying the server's message. A 401 also fires
 * `andon:unauthorized` so the app can ask for a token again.
 */
export async function request(method, path, { body, signal, text = false } = {}) {
  if (!documented(method, path)) {
    throw new ApiError(0, "undocumented", `${method} ${path} is not in this server's API`);
  }
  const headers = { Accept: text ? "text/plain" : "application/json" };
  const token = getToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
    cache: "no-store",
  });
  if (!resp.ok) {
    let code = "error";
    let message = `${resp.status} ${resp.statusText}`;
    try {
      const j = await resp.json();
      if (j && j.error) {
        code = j.error.code || code;
        message = j.error.message || message;
      }
    } catch {
      /* not JSON: keep the status line */
    }
    if (resp.status === 401) window.dispatchEvent(new CustomEvent("andon:unauthorized"));
    throw new ApiError(resp.status, code, message);
  }
  if (text) return resp.text();
  const raw = await resp.text();
  return raw ? JSON.parse(raw) : null;
}

export const get = (path, opts) => request("GET", path, opts);
export const post = (path, body, opts) => request("POST", path, { ...opts, body });
export const put = (path, body, opts) => request("PUT", path, { ...opts, body });

/** The fetch() Response itself, for streams; same checks as request(). */
export async function open(path, { signal, headers = {} } = {}) {
  if (!documented("GET", path)) {
    throw new ApiError(0, "undocumented", `GET ${path} is not in this server's API`);
  }
  const h = { Accept: "text/event-stream", ...headers };
  const token = getToken();
  if (token) h.Authorization = `Bearer ${token}`;
  const resp = await fetch(path, { headers: h, signal, cache: "no-store" });
  if (!resp.ok) {
    let message = `${resp.status} ${resp.statusText}`;
    try {
      const j = await resp.json();
      if (j && j.error) message = j.error.message || message;
    } catch {
      /* keep the status line */
    }
    if (resp.status === 401) window.dispatchEvent(new CustomEvent("andon:unauthorized"));
    throw new ApiError(resp.status, "stream", message);
  }
  return resp;
}
