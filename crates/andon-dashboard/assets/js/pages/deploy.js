// One release: what it carried, where, its traffic over time, every verdict
// of the judge with its sentence, and its timeline of events.

import { h, fill } from "../dom.js";
import { get, seg, has } from "../api.js";
import { hub, describe } from "../events.js";
import { pill, pageHeader, errorBox, throttle, actionButton, section, facts } from "../ui.js";
import { trafficChart } from "../chart.js";
import { splitBar, verdictList } from "./envs.js";
import { shortDigest, shortSha, phaseOf, dateTime, duration, clock } from "../format.js";

export function deployPage(ctx, route) {
  const id = route.id;
  const body = h("div", { class: "stack" }, h("p", { class: "muted" }, "Loading…"));
  const out = h("div", { role: "alert", class: "action-out" });
  const el = h("div", { class: "page" }, body);
  let alive = true;
  let headKey = "";
  const head = h("div");
  const dyn = h("div", { class: "stack" });

  const load = async () => {
    let d;
    let env = null;
    try {
      d = await get(`/api/v1/deploys/${id}`);
      const envs = await get(`/api/v1/projects/${seg(d.project)}/environments`).catch(() => []);
      env = envs.find((e) => e.name === d.environment) || null;
    } catch (err) {
      if (alive) fill(body, errorBox(err));
      return;
    }
    if (!alive) return;
    ctx.setProject(d.project);
    const ph = phaseOf(d.phase);
    const key = `${ph.label}`;
    if (key !== headKey) {
      headKey = key;
      const acts = [];
      if (!ph.done && has("POST", "/api/v1/projects/{project}/environments/{env}/{action}")) {
        for (const [action, text, kind, confirm] of [["promote", "Promote", "primary"], ["pause", "Pause"], ["resume", "Resume"], ["abort", "Abort", "danger", "Confirm abort"]]) {
          acts.push(actionButton({ text, kind, confirm, out, path: `/api/v1/projects/${seg(d.project)}/environments/${seg(d.environment)}/${action}` }));
        }
      }
      fill(head, pageHeader(
        h("span", null, `Release #${d.id} `, pill(ph.label)),
        h("span", null, h("a", { href: `#/p/${seg(d.project)}/envs` }, d.project), ` · ${d.environment} · ${d.strategy}`),
        ...acts), out);
      head.classList.add("stack");
    }
    const points = hub.traffic.get(d.id) || [];
    const log = (hub.deployLog.get(d.id) || []).slice(-60).reverse();
    fill(dyn,
      section("Release", facts([
        ["Version", h("span", { class: "mono", title: d.version }, shortDigest(d.version))],
        d.commit ? ["Commit", h("span", { class: "mono" }, shortSha(d.commit))] : null,
        d.run_id !== undefined ? ["Built by", h("a", { href: `#/runs/${d.run_id}` }, `run #${d.run_id}`)] : null,
        ["Requested", dateTime(d.requested_at_ms)],
        ["Took", d.finished_at_ms ? duration(d.finished_at_ms - d.requested_at_ms) : `${duration(Date.now() - d.requested_at_ms)} so far`],
        d.reason ? ["Reason", d.reason] : null,
      ])),
      env && env.current_deploy === d.id ? section("Traffic now", splitBar(env.weights, d.commit ? { [d.version]: shortSha(d.commit) } : {}, env.stable)) : null,
      section("Traffic over time", trafficChart(points, {
        start: d.requested_at_ms, end: d.finished_at_ms || Date.now(), width: 1200,
        names: d.commit ? { [d.version]: shortSha(d.commit) } : {},
      })),
      section("Judge's verdicts", verdictList(d.verdicts, 50)),
      section("Timeline", log.length
        ? h("ol", { class: "feed" }, log.map((e) => h("li", { class: "feed-item" }, h("time", { class: "muted mono small" }, clock(e.at_ms)), " ", describe(e))))
        : h("p", { class: "muted small" }, "No events recorded for this release.")));
    if (body.firstChild !== head) fill(body, head, dyn);
  };
  const reload = throttle(load, 400);
  load();
  return {
    el,
    onEvent: (e) => { if (e.type === "__backlog" || e.deploy_id === id) reload(); },
    dispose: () => { alive = false; },
  };
}
