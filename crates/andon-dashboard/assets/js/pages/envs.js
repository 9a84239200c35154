// Environments and releases: which version runs where, the traffic split
// over time, the judge's verdicts in its own words, the instances, and the
// buttons that steer a release. The server checks every button's role: a
// viewer's click is answered 403 and that answer is shown as it is.

import { h, fill } from "../dom.js";
import { get, seg, has } from "../api.js";
import { hub } from "../events.js";
import { pill, pageHeader, errorBox, throttle, actionButton, table, empty, facts } from "../ui.js";
import { trafficChart } from "../chart.js";
import { orderEnvs } from "./stream.js";
import { shortDigest, shortSha, phaseOf, dateTime, duration, clock, ago } from "../format.js";

const ACTIONS = [
  { action: "promote", text: "Promote", kind: "primary" },
  { action: "pause", text: "Pause" },
  { action: "resume", text: "Resume" },
  { action: "abort", text: "Abort", kind: "danger", confirm: "Confirm abort" },
  { action: "rollback", text: "Rollback", kind: "danger", confirm: "Confirm rollback" },
];

/** A horizontal bar of the router's current weights. */
export function splitBar(weights, names = {}, stable = null) {
  // The stable version first, as in the chart: same colour for the same role.
  const entries = Object.entries(weights || {}).sort(([a], [b]) => (b === stable) - (a === stable));
  if (!entries.length) return h("p", { class: "muted small" }, "No traffic routed yet.");
  const bar = h("div", { class: "split-bar", role: "img", "aria-label": `Traffic: ${entries.map(([v, w]) => `${names[v] || shortDigest(v)} ${w}%`).join(", ")}` });
  entries.forEach(([v, w], i) => {
    const part = h("span", { class: ["split-part", `s${i % 6}`], title: `${v}: ${w}%` }, w >= 12 ? `${names[v] || shortDigest(v).slice(0, 8)} ${w}%` : "");
    part.style.width = `${w}%`;
    bar.append(part);
  });
  return bar;
}

/** Digest → "abc1234" commit names, from deploys and runs. */
export function versionNames(deploys, runs) {
  const runCommit = new Map((runs || []).map((r) => [r.id, r.commit]));
  const names = {};
  for (const d of [...(deploys || [])].reverse()) {
    const c = d.commit || runCommit.get(d.run_id);
    if (c && !names[d.version]) names[d.version] = shortSha(c);
  }
  return names;
}

export function verdictList(verdicts, max = 6) {
  const vs = (verdicts || []).slice(-max).reverse();
  if (!vs.length) return h("p", { class: "muted small" }, "No verdict yet.");
  return h("ol", { class: "verdicts" }, vs.map(([at, outcome, sentence]) =>
    h("li", { class: `verdict v-${outcome}` }, pill(outcome), h("time", { class: "muted small mono" }, ` ${clock(at)} `), h("span", null, sentence))));
}

function envCard(p, env, out) {
  const dyn = h("div", { class: "env-dyn" });
  const actions = h("div", { class: "actions", role: "group", "aria-label": `Release actions for ${env.name}` },
    ACTIONS.filter(() => has("POST", "/api/v1/projects/{project}/environments/{env}/{action}")).map((a) =>
      actionButton({
        text: a.text, kind: a.kind, confirm: a.confirm, out,
        path: `/api/v1/projects/${seg(p)}/environments/${seg(env.name)}/${a.action}`,
      })));
  const deployForm = h("div", { class: "deploy-form" });
  const el = h("article", { class: "panel env-card", dataset: { env: env.name } },
    h("header", { class: "env-head" },
      h("h2", { class: "panel-title" }, env.name),
      h("span", { class: "tag" }, env.strategy),
      env.after ? h("span", { class: "muted small" }, `after ${env.after}`) : null),
    dyn, actions, out, deployForm);
  return { el, dyn, deployForm };
}

/** Passed runs that built an artifact, newest first: what can be released. */
function deployable(runs) {
  return runs.filter((r) => r.status === "passed" && (r.jobs || []).some((j) => Object.keys(j.artifacts || {}).length)).slice(0, 15);
}

function deployPicker(p, env, runs, out) {
  if (!has("POST", "/api/v1/projects/{project}/environments/{env}/deploys")) return null;
  const candidates = deployable(runs);
  if (!candidates.length) return h("p", { class: "muted small" }, "No passed run with an artifact to release.");
  const id = `deploy-${env.name}`;
  const select = h("select", { id }, candidates.map((r) => h("option", { value: r.id }, `run #${r.id} · ${shortSha(r.commit)} · ${r.branch}`)));
  const holder = h("span");
  const make = () => fill(holder, actionButton({
    text: `Deploy to ${env.name}`, out, path: `/api/v1/projects/${seg(p)}/environments/${seg(env.name)}/deploys`,
    body: { run: Number(select.value) },
  }));
  select.addEventListener("change", make);
  make();
  return h("div", { class: "inline-form" }, h("label", { for: id, class: "small muted" }, "Artifact of"), select, holder);
}

export function envsPage(ctx, route) {
  const p = route.project;
  const body = h("div", null, h("p", { class: "muted" }, "Loading…"));
  const history = h("div");
  const el = h("div", { class: "page" },
    pageHeader(`Environments of ${p}`, "Versions running, traffic split, the judge's verdicts; actions are checked by the server against your token's role."),
    body, history);
  let alive = true;
  let cards = new Map();
  let shape = "";
  let pickerKey = null;
  const outs = new Map();

  const load = async () => {
    let envs;
    let deploys;
    let runs;
    try {
      [envs, deploys, runs] = await Promise.all([
        get(`/api/v1/projects/${seg(p)}/environments`),
        get(`/api/v1/projects/${seg(p)}/deploys`).catch(() => []),
        get(`/api/v1/projects/${seg(p)}/runs?limit=60`).catch(() => []),
      ]);
    } catch (err) {
      if (alive) fill(body, errorBox(err));
      return;
    }
    if (!alive) return;
    envs = orderEnvs(envs);
    if (!envs.length) {
      fill(body, empty("This project's andon.yaml declares no environments."));
      return;
    }
    const names = versionNames(deploys, runs);
    const newShape = envs.map((e) => e.name).join("\u0000");
    if (newShape !== shape) {
      shape = newShape;
      pickerKey = null;
      cards = new Map();
      for (const e of envs) {
        if (!outs.has(e.name)) outs.set(e.name, h("div", { role: "alert", class: "action-out" }));
        cards.set(e.name, envCard(p, e, outs.get(e.name)));
      }
      fill(body, h("div", { class: "env-grid" }, [...cards.values()].map((c) => c.el)));
    }
    // A newly passed run becomes a candidate without a reload; an unchanged
    // list is left alone so a choice being made is not reset.
    const candidates = deployable(runs).map((r) => r.id).join(",");
    if (candidates !== pickerKey) {
      pickerKey = candidates;
      for (const e of envs) {
        const picker = deployPicker(p, e, runs, outs.get(e.name));
        if (picker) fill(cards.get(e.name).deployForm, picker);
      }
    }
    for (const e of envs) {
      const card = cards.get(e.name);
      const latest = deploys.find((d) => d.environment === e.name);
      const current = e.current_deploy !== null && e.current_deploy !== undefined ? deploys.find((d) => d.id === e.current_deploy) : null;
      const shown = current || latest;
      const ready = (e.instances || []).filter((i) => i.ready).length;
      const points = shown ? hub.traffic.get(shown.id) || [] : [];
      const ph = shown ? phaseOf(shown.phase) : null;
      fill(card.dyn,
        facts([
          ["Stable", e.stable ? h("span", null, h("span", { class: "mono", title: e.stable }, shortDigest(e.stable)), names[e.stable] ? h("span", { class: "muted" }, ` · commit ${names[e.stable]}`) : null) : h("span", { class: "muted" }, "nothing released yet")],
          ["Release", shown ? h("span", null, h("a", { href: `#/deploys/${shown.id}` }, `#${shown.id}`), " ", pill(ph.label), h("span", { class: "muted small" }, ` ${shown.strategy} · ${ago(shown.requested_at_ms)}`)) : h("span", { class: "muted" }, "none")],
          ["Instances", `${ready} ready of ${(e.instances || []).length}`],
          ["Good versions", String((e.good_versions || []).length)],
        ]),
        h("h3", { class: "sub" }, "Traffic now"),
        splitBar(e.weights, names, e.stable),
        shown ? [h("h3", { class: "sub" }, `Traffic over release #${shown.id}`),
          trafficChart(points, { start: shown.requested_at_ms, end: shown.finished_at_ms || Date.now(), names })] : null,
        shown ? [h("h3", { class: "sub" }, "Judge"), verdictList(shown.verdicts, 3)] : null,
        (e.instances || []).length
          ? h("details", { class: "instances" }, h("summary", null, `Instances (${(e.instances || []).length})`),
            table([
              { title: "Instance", cell: (i) => h("span", { class: "mono small" }, i.id) },
              { title: "Version", cell: (i) => h("span", { class: "mono small" }, names[i.version] || shortDigest(i.version)) },
              { title: "Address", cell: (i) => h("span", { class: "mono small" }, i.addr) },
              { title: "State", cell: (i) => [pill(i.ready ? "passed" : "pending", i.ready ? "ready" : "starting"), i.drift ? h("span", { class: "tag warn", title: i.drift }, "drift") : null] },
            ], e.instances, { caption: `Instances of ${e.name}` }))
          : null);
    }
    fill(history, h("section", { class: "panel" }, h("h2", { class: "panel-title" }, "Releases"),
      deploys.length ? table([
        { title: "Release", cell: (d) => h("a", { href: `#/deploys/${d.id}` }, `#${d.id}`) },
        { title: "Environment", cell: (d) => d.environment },
        { title: "Version", cell: (d) => h("span", { class: "mono", title: d.version }, names[d.version] || shortDigest(d.version)) },
        { title: "Strategy", cell: (d) => d.strategy },
        { title: "State", cell: (d) => pill(phaseOf(d.phase).label) },
        { title: "Last verdict", cell: (d) => (d.verdicts && d.verdicts.length ? d.verdicts[d.verdicts.length - 1][2] : "—"), class: "wrap" },
        { title: "Requested", cell: (d) => dateTime(d.requested_at_ms), class: "hide-sm" },
        { title: "Took", cell: (d) => (d.finished_at_ms ? duration(d.finished_at_ms - d.requested_at_ms) : "—"), class: "num" },
      ], deploys.slice(0, 30), { caption: "Releases" }) : h("p", { class: "muted" }, "No releases yet.")));
  };
  const reload = throttle(load, 500);
  load();
  return {
    el,
    onEvent: (e) => {
      if (e.type === "__backlog" || e.project === p || (e.environment && (cards.has(e.environment) || hub.envProject.get(e.environment) === p)) ||
        (e.type === "run_finished" && hub.runProject.get(e.run_id) === p)) reload();
    },
    dispose: () => { alive = false; },
  };
}
