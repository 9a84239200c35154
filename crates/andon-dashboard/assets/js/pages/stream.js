// The value stream: each commit's way from push through the pipeline's
// stages to the environments, and where it stands now. Columns are the
// stages (in plan order) then the environments (in promotion order).

import { h, fill } from "../dom.js";
import { get, seg } from "../api.js";
import { hub, commitInfo } from "../events.js";
import { pageHeader, errorBox, throttle, empty } from "../ui.js";
import { shortSha, duration, firstLine, ago, phaseOf, shortDigest } from "../format.js";

const ROWS = 15;

/** One stage's status from its jobs. */
export function stageStatus(jobs) {
  if (!jobs.length) return null;
  const st = jobs.map((j) => j.status);
  const blocking = jobs.filter((j) => !j.allow_failure).map((j) => j.status);
  if (st.includes("running")) return "running";
  if (blocking.some((x) => x === "failed" || x === "timed_out")) return "failed";
  if (st.includes("cancelled")) return "cancelled";
  if (st.every((x) => x === "pending")) return "pending";
  if (st.every((x) => x === "skipped")) return "skipped";
  if (st.includes("pending")) return "running";
  return "passed";
}

/** Environments in promotion order (`after` first), keeping config order otherwise. */
export function orderEnvs(envs) {
  const out = [];
  const placed = new Set();
  const names = new Set(envs.map((e) => e.name));
  for (let guard = 0; out.length < envs.length && guard <= envs.length; guard++) {
    for (const e of envs) {
      if (placed.has(e.name)) continue;
      if (!e.after || placed.has(e.after) || !names.has(e.after)) {
        out.push(e);
        placed.add(e.name);
      }
    }
  }
  for (const e of envs) if (!placed.has(e.name)) out.push(e);
  return out;
}

function deployStatus(d, env) {
  const ph = phaseOf(d.phase);
  if (!ph.done) {
    const w = env && env.current_deploy === d.id ? env.weights || {} : {};
    const pct = w[d.version];
    return { status: ph.label, text: pct !== undefined ? `${ph.label.replace("_", " ")} ${pct}%` : ph.label.replace("_", " ") };
  }
  return { status: ph.label, text: ph.label.replace("_", " ") };
}

export function streamPage(ctx, route) {
  const p = route.project;
  const body = h("div", null, h("p", { class: "muted" }, "Loading…"));
  const el = h("div", { class: "page" },
    pageHeader(`Value stream of ${p}`, "Each commit from push to production; the ringed cell is where it stands now."),
    body);
  let alive = true;

  const load = async () => {
    let runs;
    let envs;
    let deploys;
    try {
      [runs, envs, deploys] = await Promise.all([
        get(`/api/v1/projects/${seg(p)}/runs?limit=60`),
        get(`/api/v1/projects/${seg(p)}/environments`).catch(() => []),
        get(`/api/v1/projects/${seg(p)}/deploys`).catch(() => []),
      ]);
    } catch (err) {
      if (alive) fill(body, errorBox(err));
      return;
    }
    if (!alive) return;
    if (!runs.length) {
      fill(body, empty("No commits have gone through the pipeline yet."));
      return;
    }
    // Columns.
    const stages = [];
    for (const r of [...runs].reverse()) {
      for (const j of r.jobs || []) if (!stages.includes(j.stage)) stages.push(j.stage);
    }
    const orderedEnvs = orderEnvs(envs || []);
    // Newest run per commit.
    const rows = [];
    const seen = new Set();
    for (const r of runs) {
      if (seen.has(r.commit)) continue;
      seen.add(r.commit);
      rows.push(r);
      if (rows.length >= ROWS) break;
    }
    // Which commit each deploy carried: its own field, its run's, or the
    // commit of an earlier deploy of the same bytes (rollbacks carry none).
    const runCommit = new Map(runs.map((r) => [r.id, r.commit]));
    const versionCommit = new Map();
    for (const d of [...deploys].reverse()) {
      const c = d.commit || runCommit.get(d.run_id);
      if (c && !versionCommit.has(d.version)) versionCommit.set(d.version, c);
    }
    const deployOf = new Map(); // commit → env → newest deploy
    for (const d of deploys) {
      const c = d.commit || runCommit.get(d.run_id) || versionCommit.get(d.version);
      if (!c) continue;
      if (!deployOf.has(c)) deployOf.set(c, new Map());
      const m = deployOf.get(c);
      if (!m.has(d.environment)) m.set(d.environment, d);
    }
    const counts = new Array(stages.length + orderedEnvs.length).fill(0);

    const trs = rows.map((r) => {
      const cells = stages.map((st) => {
        const s = stageStatus((r.jobs || []).filter((j) => j.stage === st));
        const jobs = (r.jobs || []).filter((j) => j.stage === st);
        const longest = Math.max(0, ...jobs.map((j) => j.duration_ms || 0));
        return { status: s, text: s ? `${s.replace("_", " ")}${longest ? ` · ${duration(longest)}` : ""}` : "", href: `#/runs/${r.id}` };
      });
      for (const env of orderedEnvs) {
        const d = deployOf.get(r.commit) && deployOf.get(r.commit).get(env.name);
        if (!d) {
          cells.push({ status: null, text: "" });
          continue;
        }
        const ds = deployStatus(d, env);
        const live = env.stable === d.version && ds.status === "succeeded";
        cells.push({ status: ds.status, text: ds.text, href: `#/deploys/${d.id}`, live });
      }
      // Where the commit stands: the furthest cell it reached.
      let here = -1;
      cells.forEach((c, i) => { if (c.status && c.status !== "pending" && c.status !== "skipped") here = i; });
      if (here >= 0) counts[here] += 1;
      const c = commitInfo(r.commit);
      return h("tr", { dataset: { commit: r.commit } },
        h("th", { scope: "row", class: "vs-commit" },
          h("a", { href: `#/runs/${r.id}`, class: "mono" }, shortSha(r.commit)),
          r.branch !== (ctx.projects.find((x) => x.name === p) || {}).trunk ? h("span", { class: "tag" }, r.branch) : null,
          h("div", { class: "small vs-msg" }, c ? firstLine(c.message, 48) : `run #${r.id}`),
          h("div", { class: "small muted" }, `${c && c.author ? `${c.author} · ` : ""}${ago(r.queued_at_ms)}`)),
        cells.map((cell, i) => h("td", { class: ["vs-cell", i === stages.length ? "env-start" : ""] },
          cell.status
            ? h("a", {
              href: cell.href, class: ["chip", `st-${cell.status}`, i === here ? "here" : ""],
              "aria-label": `${i < stages.length ? stages[i] : orderedEnvs[i - stages.length].name}: ${cell.text}${i === here ? " (current position)" : ""}`,
            }, cell.text, cell.live ? h("span", { class: "live-tag" }, "live") : null)
            : h("span", { class: "chip none", "aria-hidden": "true" }, "·"))));
    });

    const headCell = (name, i, sub) => h("th", { scope: "col", class: i === stages.length ? "env-start" : null },
      h("div", null, name), h("div", { class: "small muted" }, sub, counts[i] ? ` · ${counts[i]} here` : ""));
    fill(body, h("section", { class: "panel vs-panel" },
      h("div", { class: "table-wrap" },
        h("table", { class: "vs" },
          h("caption", { class: "sr-only" }, `Value stream of ${p}`),
          h("thead", null,
            h("tr", { class: "vs-groups" },
              h("td"),
              stages.length ? h("th", { scope: "colgroup", colspan: stages.length }, "Pipeline") : null,
              orderedEnvs.length ? h("th", { scope: "colgroup", colspan: orderedEnvs.length, class: "env-start" }, "Environments") : null),
            h("tr", null,
              h("th", { scope: "col" }, "Commit"),
              stages.map((st, i) => {
                const n = (rows[0].jobs || []).filter((j) => j.stage === st).length;
                return headCell(st, i, `${n} job${n === 1 ? "" : "s"}`);
              }),
              orderedEnvs.map((e, i) => headCell(e.name, stages.length + i,
                e.stable ? `live ${shortDigest(e.stable).slice(0, 8)}` : e.strategy)))),
          h("tbody", null, trs))),
      !orderedEnvs.length ? h("p", { class: "muted small pad" }, "No environments in this project's andon.yaml.") : null));
  };
  const reload = throttle(load, 500);
  load();
  return {
    el,
    onEvent: (e) => {
      if (e.type === "__backlog" || e.project === p || (e.run_id !== undefined && hub.runProject.get(e.run_id) === p) ||
        (e.environment && hub.envProject.get(e.environment) === p)) reload();
    },
    dispose: () => { alive = false; },
  };
}


