// Incidents: open ones first, with the release that caused them and the
// postmortem when written. Shown only when the server documents
// GET /api/v1/projects/{project}/incidents.

import { h, fill } from "../dom.js";
import { get, seg } from "../api.js";
import { pill, pageHeader, errorBox, throttle, empty, table } from "../ui.js";
import { dateTime, duration } from "../format.js";

const pick = (o, ...keys) => {
  for (const k of keys) if (o && o[k] !== undefined && o[k] !== null) return o[k];
  return undefined;
};

export function incidentsPage(ctx, route) {
  const p = route.project;
  const body = h("div", null, h("p", { class: "muted" }, "Loading…"));
  const el = h("div", { class: "page" }, pageHeader(`Incidents of ${p}`, "Opened by failed releases and alerts; resolved when service is restored."), body);
  let alive = true;
  const load = async () => {
    let list;
    try {
      list = await get(`/api/v1/projects/${seg(p)}/incidents`);
    } catch (err) {
      if (alive) fill(body, errorBox(err));
      return;
    }
    if (!alive) return;
    if (list && !Array.isArray(list)) list = list.incidents || [];
    if (!list || !list.length) {
      fill(body, empty("No incidents. 🎉"));
      return;
    }
    const resolvedAt = (i) => pick(i, "resolved_at_ms", "resolved_at");
    const openedAt = (i) => pick(i, "opened_at_ms", "opened_at", "at_ms");
    const sorted = [...list].sort((a, b) => (resolvedAt(a) ? 1 : 0) - (resolvedAt(b) ? 1 : 0) || (openedAt(b) || 0) - (openedAt(a) || 0));
    fill(body, h("section", { class: "panel" }, table([
      { title: "#", cell: (i) => `#${pick(i, "id", "incident_id")}` },
      { title: "State", cell: (i) => (resolvedAt(i) || i.status === "resolved" ? pill("passed", "resolved") : pill("failed", "open")) },
      { title: "Title", cell: (i) => pick(i, "title") || "—", class: "wrap" },
      { title: "Environment", cell: (i) => pick(i, "environment") || "—" },
      { title: "Release", cell: (i) => (pick(i, "deploy_id") !== undefined ? h("a", { href: `#/deploys/${i.deploy_id}` }, `#${i.deploy_id}`) : "—") },
      { title: "Opened", cell: (i) => dateTime(openedAt(i)) },
      { title: "Restored in", cell: (i) => (resolvedAt(i) && openedAt(i) ? duration(resolvedAt(i) - openedAt(i)) : "—"), class: "num" },
      { title: "Postmortem", cell: (i) => (i.postmortem ? h("details", null, h("summary", null, "read"),
        h("p", null, h("strong", null, "Went right: "), i.postmortem.went_right || "—"),
        h("p", null, h("strong", null, "Went wrong: "), i.postmortem.went_wrong || "—"),
        (i.postmortem.action_items || []).length ? h("ul", null, i.postmortem.action_items.map((a) => h("li", null, a))) : null) : "—") },
    ], sorted, { caption: `Incidents of ${p}` })));
  };
  const reload = throttle(load, 500);
  load();
  return {
    el,
    onEvent: (e) => { if (e.type.startsWith("incident_") || e.type === "postmortem_written") reload(); },
    dispose: () => { alive = false; },
  };
}
