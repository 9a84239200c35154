// One incident: what opened it, its timeline (filled from events), and its
// blameless postmortem. The form asks what went right, what went wrong
// and what to do next, never who: the questions are the product's, so a
// postmortem reads as a story about the system, not a trial. Saving is a
// PUT the server role-checks (developer); a viewer's 403 is shown as sent.

import { h, fill } from "../dom.js";
import { get, put, has } from "../api.js";
import { pill, pageHeader, section, errorBox, throttle, actionButton, facts } from "../ui.js";
import { dateTime, duration, clock } from "../format.js";

/** Action items typed one per line; blank lines dropped. */
export function actionItems(text) {
  return String(text || "").split("\n").map((l) => l.replace(/^\s*[-*•]\s*/, "").trim()).filter(Boolean);
}

function postmortemView(pm) {
  return h("div", { class: "postmortem", dataset: { written: "true" } },
    h("h3", { class: "sub" }, "What went right"), h("p", { class: "pm-right" }, pm.went_right || "—"),
    h("h3", { class: "sub" }, "What went wrong"), h("p", { class: "pm-wrong" }, pm.went_wrong || "—"),
    h("h3", { class: "sub" }, "Action items"),
    (pm.action_items || []).length
      ? h("ul", { class: "pm-items" }, pm.action_items.map((a) => h("li", null, a)))
      : h("p", { class: "muted" }, "None."));
}

function field(id, text, hint, value, rows) {
  return h("div", { class: "field" },
    h("label", { for: id }, text),
    h("p", { id: `${id}-hint`, class: "muted small" }, hint),
    h("textarea", { id, rows, "aria-describedby": `${id}-hint` }, value || ""));
}

export function incidentPage(ctx, route) {
  const id = route.id;
  const head = h("div");
  const body = h("div", { class: "stack" }, h("p", { class: "muted" }, "Loading…"));
  const out = h("div", { role: "alert", class: "action-out" });
  const el = h("div", { class: "page" }, head, out, body);
  const canWrite = has("PUT", "/api/v1/incidents/{id}/postmortem");
  const canResolve = has("POST", "/api/v1/incidents/{id}/resolve");
  let alive = true;
  let editing = false;
  let inc = null;

  const form = (pm) => {
    const right = field("pm-went-right", "What went right?", "What helped: alerts that fired, the rollback, people who knew where to look.", pm && pm.went_right, 4);
    const wrong = field("pm-went-wrong", "What went wrong?", "What the system let happen: missing checks, slow signals, unclear steps. Describe what happened, not who did it.", pm && pm.went_wrong, 4);
    const items = field("pm-actions", "Action items", "One per line.", pm && (pm.action_items || []).join("\n"), 4);
    const value = (f) => f.querySelector("textarea").value;
    const save = actionButton({
      text: pm ? "Save postmortem" : "Publish postmortem", kind: "primary", out,
      call: () => put(`/api/v1/incidents/${id}/postmortem`, {
        went_right: value(right).trim(), went_wrong: value(wrong).trim(), action_items: actionItems(value(items)),
      }),
      onDone: (res) => {
        editing = false;
        if (res) {
          inc = res;
          render();
        }
      },
    });
    const cancel = pm ? h("button", { type: "button", class: "btn ghost", onclick: () => { editing = false; render(); } }, "Cancel") : null;
    return h("form", { class: "pm-form", "aria-label": "Blameless postmortem", onsubmit: (ev) => ev.preventDefault() },
      right, wrong, items, h("div", { class: "inline-form" }, save, cancel));
  };

  const render = () => {
    const i = inc;
    const open = !i.resolved_at_ms;
    const acts = [];
    if (open && canResolve) {
      acts.push(actionButton({
        text: "Resolve", label: `Resolve incident #${i.id}`, out, path: `/api/v1/incidents/${i.id}/resolve`,
        body: { note: "resolved from the dashboard" }, onDone: () => reload(),
      }));
    }
    fill(head, pageHeader(
      h("span", null, `Incident #${i.id} `, open ? pill("failed", "open") : pill("passed", "resolved")),
      h("span", null, h("a", { href: `#/p/${encodeURIComponent(i.project)}/incidents` }, i.project), ` · ${i.environment} · ${i.title}`),
      ...acts));
    let pmPart;
    if (i.postmortem && !editing) {
      pmPart = [postmortemView(i.postmortem), canWrite
        ? h("button", { type: "button", class: "btn", onclick: () => { editing = true; render(); document.getElementById("pm-went-right")?.focus(); } }, "Edit postmortem")
        : null];
    } else if (canWrite) {
      pmPart = form(i.postmortem);
    } else {
      pmPart = h("p", { class: "muted" }, "No postmortem yet.");
    }
    fill(body,
      h("div", { class: "two-col" },
        h("div", { class: "stack" },
          section("Incident", facts([
            ["Opened", dateTime(i.opened_at_ms)],
            ["Resolved", i.resolved_at_ms ? dateTime(i.resolved_at_ms) : "not yet"],
            ["Restored in", i.resolved_at_ms ? duration(i.resolved_at_ms - i.opened_at_ms) : "—"],
            i.deploy_id !== undefined && i.deploy_id !== null ? ["Release", h("a", { href: `#/deploys/${i.deploy_id}` }, `#${i.deploy_id}`)] : null,
          ])),
          section("Timeline", (i.timeline || []).length
            ? h("ol", { class: "feed timeline" }, i.timeline.map((t) =>
              h("li", { class: ["feed-item", `tl-${t.kind}`] }, h("time", { class: "muted mono small" }, clock(t.at_ms)), " ", t.text)))
            : h("p", { class: "muted small" }, "No events yet."))),
        h("section", { class: "panel", "aria-labelledby": "pm-title" },
          h("h2", { class: "panel-title", id: "pm-title" }, "Blameless postmortem"),
          h("p", { class: "muted small" }, "What happened and what we learn from it. Systems fail; people act on what the system shows them."),
          pmPart)));
  };

  const dirty = () => {
    const f = body.querySelector(".pm-form");
    if (!f) return false;
    if (f.contains(document.activeElement)) return true;
    return [...f.querySelectorAll("textarea")].some((t) => t.value !== t.defaultValue);
  };

  const load = async () => {
    try {
      const i = await get(`/api/v1/incidents/${id}`);
      if (!alive) return;
      inc = i;
      ctx.setProject(i.project);
      // A form being typed in is never redrawn under the user's fingers.
      if (!dirty()) render();
    } catch (err) {
      if (alive) fill(body, errorBox(err));
    }
  };
  const reload = throttle(load, 400);
  load();
  return {
    el,
    onEvent: (e) => {
      if (e.type === "__backlog" || e.incident_id === id) reload();
    },
    dispose: () => { alive = false; },
  };
}
