// A project's runs, newest first, with a progress bar of their jobs.

import { h, fill } from "../dom.js";
import { get, seg, has } from "../api.js";
import { hub, commitInfo } from "../events.js";
import { pill, pageHeader, errorBox, throttle, actionButton, table, empty } from "../ui.js";
import { shortSha, duration, ago, firstLine } from "../format.js";

function progress(run) {
  const jobs = run.jobs || [];
  if (!jobs.length) return h("span", { class: "muted small" }, "—");
  const count = (pred) => jobs.filter(pred).length;
  const done = count((j) => j.status === "passed");
  const bad = count((j) => j.status === "failed" || j.status === "timed_out");
  const active = count((j) => j.status === "running");
  const bar = h("span", { class: "bar", role: "img", "aria-label": `${done} of ${jobs.length} jobs passed` });
  const segs = [["passed", done], ["failed", bad], ["running", active]];
  for (const [st, n] of segs) {
    if (!n) continue;
    const part = h("span", { class: ["bar-part", `bg-${st}`] });
    part.style.width = `${(n / jobs.length) * 100}%`;
    bar.append(part);
  }
  return h("span", { class: "progress" }, bar, h("span", { class: "small muted" }, ` ${done}/${jobs.length}`));
}

export function runsPage(ctx, route) {
  const p = route.project;
  const out = h("div", { role: "alert", class: "action-out" });
  const body = h("div", null, h("p", { class: "muted" }, "Loading…"));
  const actions = [];
  if (has("POST", "/api/v1/projects/{project}/runs")) {
    actions.push(actionButton({
      text: "Trigger run", path: `/api/v1/projects/${seg(p)}/runs`, body: {}, out, kind: "primary",
      onDone: (res) => { if (res && res.id) ctx.go(`#/runs/${res.id}`); },
    }));
  }
  const el = h("div", { class: "page" }, pageHeader(`Runs of ${p}`, "Newest first; the trunk's runs decide the andon light.", ...actions), out, body);
  let alive = true;
  const load = async () => {
    try {
      const runs = await get(`/api/v1/projects/${seg(p)}/runs?limit=100`);
      if (!alive) return;
      if (!runs.length) {
        fill(body, empty("No runs yet.", "Push to the trunk or press “Trigger run”."));
        return;
      }
      const now = Date.now();
      fill(body, h("section", { class: "panel" }, table([
        { title: "Run", cell: (r) => h("a", { href: `#/runs/${r.id}` }, `#${r.id}`) },
        { title: "Status", cell: (r) => pill(r.status) },
        { title: "Commit", cell: (r) => {
          const c = commitInfo(r.commit);
          return h("span", null, h("span", { class: "mono" }, shortSha(r.commit)), c ? h("span", { class: "muted" }, ` ${firstLine(c.message, 60)}`) : null);
        } },
        { title: "Author", cell: (r) => (commitInfo(r.commit) || {}).author || "—", class: "hide-sm" },
        { title: "Branch", cell: (r) => r.branch },
        { title: "Jobs", cell: progress },
        { title: "Started", cell: (r) => ago(r.started_at_ms || r.queued_at_ms, now), class: "hide-sm" },
        { title: "Duration", cell: (r) => (r.started_at_ms ? duration((r.finished_at_ms || now) - r.started_at_ms) : "—"), class: "num" },
      ], runs, { caption: `Runs of ${p}` })));
    } catch (err) {
      if (alive) fill(body, errorBox(err));
    }
  };
  const reload = throttle(load, 400);
  load();
  return {
    el,
    onEvent: (e) => {
      if (e.type === "__backlog" || e.project === p || (e.run_id !== undefined && hub.runProject.get(e.run_id) === p)) reload();
    },
    dispose: () => { alive = false; },
  };
}
