// Incidents: open ones first, the release that caused them, their timeline
// (filled from events), the postmortem when written (written and edited on
// the incident's own page, pages/incident.js), and a Resolve button
// the server role-checks. Shown only when the server documents
// GET /api/v1/projects/{project}/incidents.

import { h, fill } from "../dom.js";
import { get, seg, has } from "../api.js";
import { pill, pageHeader, errorBox, throttle, empty, table, actionButton } from "../ui.js";
import { dateTime, duration, clock } from "../format.js";

function details(i) {
  const parts = [];
  if ((i.timeline || []).length) {
    parts.push(h("ol", { class: "feed" }, i.timeline.map((t) =>
      h("li", { class: "feed-item" }, h("time", { class: "muted mono small" }, clock(t.at_ms)), " ", t.text))));
  }
  if (i.postmortem) {
    parts.push(h("div", { class: "postmortem" },
      h("p", null, h("strong", null, "Went right: "), i.postmortem.went_right || "—"),
      h("p", null, h("strong", null, "Went wrong: "), i.postmortem.went_wrong || "—"),
      (i.postmortem.action_items || []).length ? h("ul", null, i.postmortem.action_items.map((a) => h("li", null, a))) : null));
  }
  return parts.length ? h("details", null, h("summary", null, i.postmortem ? "timeline · postmortem" : "timeline"), parts) : "—";
}

export function incidentsPage(ctx, route) {
  const p = route.project;
  const body = h("div", null, h("p", { class: "muted" }, "Loading…"));
  const out = h("div", { role: "alert", class: "action-out" });
  const el = h("div", { class: "page" },
    pageHeader(`Incidents of ${p}`, "Opened by rolled-back releases and alerts; resolved when service is restored."), out, body);
  let alive = true;
  let reload = () => {};
  const canResolve = has("POST", "/api/v1/incidents/{id}/resolve");
  const load = async () => {
    let list;
    try {
      list = await get(`/api/v1/projects/${seg(p)}/incidents`);
    } catch (err) {
      if (alive) fill(body, errorBox(err));
      return;
    }
    if (!alive) return;
    if (!Array.isArray(list) || !list.length) {
      fill(body, empty("No incidents."));
      return;
    }
    const sorted = [...list].sort((a, b) => (a.resolved_at_ms ? 1 : 0) - (b.resolved_at_ms ? 1 : 0) || b.opened_at_ms - a.opened_at_ms);
    fill(body, h("section", { class: "panel" }, table([
      { title: "#", cell: (i) => h("a", { href: `#/incidents/${i.id}` }, `#${i.id}`) },
      { title: "State", cell: (i) => (i.resolved_at_ms ? pill("passed", "resolved") : pill("failed", "open")) },
      { title: "Title", cell: (i) => h("a", { href: `#/incidents/${i.id}` }, i.title), class: "wrap" },
      { title: "Postmortem", cell: (i) => (i.postmortem ? pill("passed", "written") : h("a", { href: `#/incidents/${i.id}`, class: "small" }, "write it")) },
      { title: "Environment", cell: (i) => i.environment },
      { title: "Release", cell: (i) => (i.deploy_id !== undefined && i.deploy_id !== null ? h("a", { href: `#/deploys/${i.deploy_id}` }, `#${i.deploy_id}`) : "—") },
      { title: "Opened", cell: (i) => dateTime(i.opened_at_ms) },
      { title: "Restored in", cell: (i) => (i.resolved_at_ms ? duration(i.resolved_at_ms - i.opened_at_ms) : "—"), class: "num" },
      { title: "Details", cell: details, class: "wrap" },
      { title: "", cell: (i) => (!i.resolved_at_ms && canResolve
        ? actionButton({ text: "Resolve", label: `Resolve incident #${i.id}`, kind: "small", out, path: `/api/v1/incidents/${i.id}/resolve`, body: { note: "resolved from the dashboard" }, onDone: () => reload() })
        : null) },
    ], sorted, { caption: `Incidents of ${p}` })));
  };
  reload = throttle(load, 500);
  load();
  return {
    el,
    onEvent: (e) => { if (e.type.startsWith("incident_") || e.type === "postmortem_written" || e.type === "__backlog") reload(); },
    dispose: () => { alive = false; },
  };
}
