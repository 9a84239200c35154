// Asks for an API token once and keeps it in this browser (localStorage).
// The token is checked by listing projects, which every role may do.

import { h } from "../dom.js";
import { setToken, get, ApiError } from "../api.js";

export function loginPage(ctx, { onSignedIn }) {
  const input = h("input", {
    id: "token", type: "password", name: "token", autocomplete: "off", spellcheck: "false",
    required: true, placeholder: "andon_…", "aria-describedby": "token-help",
  });
  const out = h("div", { role: "alert", class: "form-msg" });
  const submit = h("button", { type: "submit", class: "btn primary" }, "Connect");
  const form = h("form", { class: "login-form", novalidate: true },
    h("label", { for: "token" }, "API token"),
    input,
    h("p", { id: "token-help", class: "muted small" },
      "Paste a token made with ",
      h("code", null, "andon token create NAME --role viewer"),
      " (or any other role). It is kept in this browser only; a viewer token can look but not act."),
    submit, out);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const token = input.value.trim();
    if (!token) {
      out.replaceChildren(h("div", { class: "alert error" }, "Paste a token first."));
      input.focus();
      return;
    }
    submit.disabled = true;
    setToken(token);
    try {
      await get("/api/v1/projects");
      onSignedIn();
    } catch (err) {
      setToken("");
      const msg = err instanceof ApiError && err.status === 401
        ? "The server does not know this token (revoked or mistyped)."
        : `Could not sign in: ${err.message}`;
      out.replaceChildren(h("div", { class: "alert error" }, msg));
      input.select();
    } finally {
      submit.disabled = false;
    }
  });
  const el = h("div", { class: "login" },
    h("div", { class: "login-card panel" },
      h("div", { class: "login-light", "aria-hidden": "true" }),
      h("h1", null, "Sign in to Andon"),
      form));
  setTimeout(() => input.focus(), 0);
  return { el };
}
