// Pieces every page uses: status pills, page headers, errors, toasts,
// buttons that call the API and show the server's answer, and throttling.

import { h } from "./dom.js";
import { request, ApiError } from "./api.js";
import { label } from "./format.js";

const ICON = {
  passed: "✓", succeeded: "✓", green: "✓", pass: "✓",
  failed: "✕", timed_out: "⏱", red: "✕", fail: "✕", rolled_back: "↶", aborted: "■",
  running: "●", in_progress: "●", queued: "○", pending: "○",
  cancelled: "⊘", skipped: "↷", interrupted: "!", paused: "❚❚", frozen: "❄",
};

/** A coloured status label; the colour comes from the CSS class `st-<status>`. */
export function pill(status, text) {
  const st = String(status || "unknown");
  return h("span", { class: ["pill", `st-${st}`] },
    h("span", { class: "pill-icon", "aria-hidden": "true" }, ICON[st] || "•"),
    text ?? label(st));
}

export function pageHeader(title, sub, ...actions) {
  return h("div", { class: "page-head" },
    h("div", { class: "page-title" }, h("h1", null, title), sub ? h("div", { class: "page-sub muted" }, sub) : null),
    actions.length ? h("div", { class: "page-actions" }, actions) : null);
}

export function section(title, ...children) {
  return h("section", { class: "panel" }, h("h2", { class: "panel-title" }, title), children);
}

export function empty(text, hint) {
  return h("div", { class: "empty" }, h("p", null, text), hint ? h("p", { class: "muted" }, hint) : null);
}

export function errorBox(err) {
  const msg = err instanceof ApiError ? err.message : String((err && err.message) || err);
  return h("div", { class: "alert error", role: "alert" }, msg);
}

export function toast(message, kind = "info") {
  const host = document.getElementById("toasts");
  if (!host) return;
  const t = h("div", { class: ["toast", kind] }, message);
  host.append(t);
  setTimeout(() => t.remove(), kind === "error" ? 8000 : 4000);
}

/**
 * A button that calls the API. The server checks roles: a viewer's click
 * comes back 403 and the server's sentence is shown next to the button
 * (in `out`, an element with role=alert), never hidden or guessed here.
 * `confirm` asks for a second click within five seconds. `body` may be a
 * function, called at click time (for values typed next to the button).
 * `call`, instead of `path`, is an async function doing the requests
 * itself (a read-modify-write such as a flag toggle).
 */
export function actionButton({ text, label: name, method = "POST", path, body, call, confirm, out, kind = "", onDone }) {
  // `name` (aria-label and messages) for buttons whose text is a symbol.
  const what = name || text;
  const btn = h("button", { type: "button", class: ["btn", kind], "aria-label": name || null }, text);
  let armed = 0;
  btn.addEventListener("click", async () => {
    if (confirm && Date.now() - armed > 5000) {
      armed = Date.now();
      btn.textContent = confirm;
      // The accessible name follows the text, or a labelled button would
      // still announce the first step.
      if (name) btn.setAttribute("aria-label", confirm);
      btn.classList.add("armed");
      setTimeout(() => {
        if (Date.now() - armed >= 5000) {
          btn.textContent = text;
          if (name) btn.setAttribute("aria-label", name);
          btn.classList.remove("armed");
        }
      }, 5100);
      return;
    }
    armed = 0;
    btn.textContent = text;
    if (name) btn.setAttribute("aria-label", name);
    btn.classList.remove("armed");
    btn.disabled = true;
    btn.setAttribute("aria-busy", "true");
    if (out) out.replaceChildren();
    try {
      const res = call
        ? await call()
        : await request(method, path, { body: typeof body === "function" ? body() : body });
      if (out) out.replaceChildren(h("div", { class: "alert ok" }, `${what}: accepted`));
      else toast(`${what}: accepted`, "ok");
      if (onDone) onDone(res);
    } catch (err) {
      const msg = err instanceof ApiError
        ? `${what} refused (${err.status || "not sent"}): ${err.message}`
        : `${what} failed: ${err.message || err}`;
      if (out) out.replaceChildren(h("div", { class: "alert error", dataset: { status: String(err.status || "") } }, msg));
      else toast(msg, "error");
    } finally {
      btn.disabled = false;
      btn.removeAttribute("aria-busy");
    }
  });
  return btn;
}

/** Runs fn at most once per `ms`, and once more after the last call. */
export function throttle(fn, ms = 300) {
  let last = 0;
  let timer = null;
  return (...args) => {
    const wait = last + ms - Date.now();
    if (timer) return;
    if (wait <= 0) {
      last = Date.now();
      fn(...args);
    } else {
      timer = setTimeout(() => {
        timer = null;
        last = Date.now();
        fn(...args);
      }, wait);
    }
  };
}

/** A small definition list: [["Strategy", "canary"], ...]. */
export function facts(rows) {
  return h("dl", { class: "facts" }, rows.filter(Boolean).map(([k, v]) => [h("dt", null, k), h("dd", null, v)]));
}

/** A table from column specs [{title, cell(row), class}] and rows. */
export function table(cols, rows, { caption, rowClass } = {}) {
  return h("div", { class: "table-wrap" },
    h("table", { class: "grid" },
      caption ? h("caption", { class: "sr-only" }, caption) : null,
      h("thead", null, h("tr", null, cols.map((c) => h("th", { scope: "col", class: c.class }, c.title)))),
      h("tbody", null, rows.map((r) =>
        h("tr", { class: rowClass ? rowClass(r) : null }, cols.map((c) => h("td", { class: c.class }, c.cell(r))))))));
}

/** The small light next to the name: red while any project's line is stopped. */
export function setBrand(state) {
  const el = document.getElementById("brand-light");
  if (el) el.dataset.state = state;
}
