// All projects, one andon light each: green while the trunk's latest run
// passed, red with who is fixing what when it failed. A light is the fold
// of runs and events, so it changes the moment the event stream says so.

import { h, fill } from "../dom.js";
import { get, seg, ApiError } from "../api.js";
import { hub, commitInfo, describe } from "../events.js";
import { pill, pageHeader, empty, errorBox, throttle, setBrand } from "../ui.js";
import { shortSha, ago, firstLine, clock, shortDigest } from "../format.js";

const FINAL = new Set(["passed", "failed"]);

/** What the light shows for a project, from its runs (newest first). */
function light(project, runs) {
  const trunk = runs.filter((r) => r.branch === project.trunk);
  const decided = trunk.find((r) => FINAL.has(r.status));
  const active = trunk.find((r) => r.status === "running" || r.status === "queued");
  const line = hub.lines.get(project.name);
  let state = decided ? (decided.status === "passed" ? "green" : "red") : "unknown";
  if (line && line.stopped && (!decided || line.run_id >= decided.id)) state = "red";
  return { state, decided, active, trunk, line };
}

function fixer(decided, active) {
  if (!decided || decided.status !== "failed") return null;
  const c = commitInfo(decided.commit);
  const who = c && c.author ? c.author : "The committer";
  const what = c && c.message ? `“${firstLine(c.message, 70)}”` : shortSha(decided.commit);
  const failedJobs = (decided.jobs || []).filter((j) => j.status === "failed" || j.status === "timed_out").map((j) => j.name);
  const rows = [
    h("p", { class: "fixer" },
      h("strong", null, who), " is fixing ", h("span", { class: "mono" }, shortSha(decided.commit)), " ", what),
  ];
  if (failedJobs.length) rows.push(h("p", { class: "muted small" }, `Failed: ${failedJobs.join(", ")}`));
  if (active) {
    const ac = commitInfo(active.commit);
    rows.push(h("p", { class: "small" }, "Fix in progress: ",
      h("a", { href: `#/runs/${active.id}` }, `run #${active.id}`),
      ac ? ` — ${ac.author || "?"}: “${firstLine(ac.message, 50)}”` : ` (${shortSha(active.commit)})`));
  }
  return rows;
}

function envSummary(envs) {
  if (!envs || !envs.length) return null;
  return h("ul", { class: "env-mini" }, envs.map((e) => {
    const versions = Object.entries(e.weights || {});
    const split = versions.length > 1
      ? versions.map(([v, w]) => `${shortDigest(v).slice(0, 6)} ${w}%`).join(" / ")
      : shortDigest(e.stable);
    return h("li", null,
      h("span", { class: "env-name" }, e.name),
      h("span", { class: ["mono", "small", e.current_deploy ? "inflight" : ""] }, e.stable || versions.length ? split : "not deployed"));
  }));
}

function card(project, runs, envs, gateMsg) {
  const L = light(project, runs);
  const state = gateMsg ? "red" : L.state;
  const words = { green: "Trunk green", red: "Line stopped", unknown: "No trunk run yet" };
  const d = L.decided;
  const status = d
    ? h("p", { class: "small muted" },
      h("a", { href: `#/runs/${d.id}` }, `run #${d.id}`), ` ${d.status} ${ago(d.finished_at_ms || d.queued_at_ms)} · ${shortSha(d.commit)}`)
    : null;
  const building = L.active && state !== "red"
    ? h("p", { class: "small" }, pill(L.active.status), " ",
      h("a", { href: `#/runs/${L.active.id}` }, `run #${L.active.id}`),
      ` ${(L.active.jobs || []).filter((j) => j.status === "passed").length}/${(L.active.jobs || []).length} jobs`)
    : null;
  const history = L.trunk.slice(0, 16).reverse();
  return h("article", { class: ["project-card", `light-${state}`], dataset: { project: project.name, light: state } },
    h("div", { class: "card-top" },
      h("div", { class: ["andon", `andon-${state}`, L.active ? "busy" : ""], role: "img", "aria-label": `${project.name}: ${words[state]}` }),
      h("div", { class: "card-main" },
        h("h2", { class: "card-title" }, h("a", { href: `#/p/${seg(project.name)}/stream` }, project.name)),
        h("p", { class: ["light-word", `tx-${state}`] }, words[state], h("span", { class: "muted small" }, ` · ${project.trunk}`)),
        status,
        gateMsg ? h("p", { class: "small" }, gateMsg) : null,
        state === "red" ? fixer(d, L.active) : building)),
    history.length
      ? h("div", { class: "history", "aria-label": "Recent trunk runs, oldest first" },
        history.map((r) => h("a", {
          href: `#/runs/${r.id}`, class: ["dot", `st-${r.status}`],
          title: `run #${r.id} ${r.status} · ${shortSha(r.commit)}`, "aria-label": `run #${r.id} ${r.status}`,
        })))
      : null,
    envSummary(envs),
    h("div", { class: "card-links" },
      h("a", { href: `#/p/${seg(project.name)}/stream` }, "Value stream"),
      h("a", { href: `#/p/${seg(project.name)}/runs` }, "Runs"),
      h("a", { href: `#/p/${seg(project.name)}/envs` }, "Environments")));
}

async function loadProject(ctx, p) {
  const [runs, envs] = await Promise.all([
    get(`/api/v1/projects/${seg(p.name)}/runs?limit=40`).catch(() => []),
    get(`/api/v1/projects/${seg(p.name)}/environments`).catch(() => null),
  ]);
  let gateMsg = null;
  // The gate is asked only when the runs say green: a stopped line answers
  // 423, which the browser would log as an error, and runs already said red.
  if (ctx.features.gate && light(p, runs).state === "green") {
    try {
      await get(`/api/v1/projects/${seg(p.name)}/gate`);
    } catch (err) {
      if (err instanceof ApiError && err.status === 423) gateMsg = err.message || "The line is stopped.";
    }
  }
  return { p, runs, envs, gateMsg };
}

export function projectsPage(ctx) {
  const summary = h("span", null, "Loading…");
  const grid = h("div", { class: "projects" });
  const feed = h("ol", { class: "feed", "aria-label": "Latest events" });
  const el = h("div", { class: "page" },
    pageHeader("Projects", summary),
    h("div", { class: "split" },
      grid,
      h("aside", { class: "panel feed-panel", "aria-labelledby": "feed-title" },
        h("h2", { class: "panel-title", id: "feed-title" }, "Activity"), feed)));

  let alive = true;
  const renderFeed = () => {
    const items = hub.recent.slice(-24).reverse();
    fill(feed, items.length
      ? items.map((e) => h("li", { class: ["feed-item", `ev-${e.type}`] },
        h("time", { class: "muted mono small" }, clock(e.at_ms)), " ", describe(e)))
      : h("li", { class: "muted" }, "No events yet."));
  };

  const load = async () => {
    let projects;
    try {
      projects = await ctx.refreshProjects();
    } catch (err) {
      fill(grid, errorBox(err));
      return;
    }
    if (!alive) return;
    if (!projects.length) {
      summary.textContent = "No projects yet.";
      fill(grid, empty("Andon is not watching any repository yet.",
        "Add one with: andon project add NAME --repo PATH_OR_URL"));
      renderFeed();
      return;
    }
    const results = await Promise.all(projects.map((p) => loadProject(ctx, p)));
    if (!alive) return;
    let green = 0;
    let red = 0;
    let busy = 0;
    const cards = results.map(({ p, runs, envs, gateMsg }) => {
      const L = light(p, runs);
      const st = gateMsg ? "red" : L.state;
      if (st === "green") green += 1;
      if (st === "red") red += 1;
      if (L.active) busy += 1;
      return card(p, runs, envs, gateMsg);
    });
    setBrand(red ? "red" : green ? "green" : "unknown");
    summary.textContent = `${projects.length} project${projects.length === 1 ? "" : "s"} · ${green} green · ${red} stopped · ${busy} building`;
    fill(grid, cards);
    renderFeed();
  };
  const reload = throttle(load, 500);
  load();
  return {
    el,
    onEvent: (e) => {
      renderFeed();
      if (e.type !== "traffic_shifted" && e.type !== "flag_exposures") reload();
    },
    dispose: () => { alive = false; },
  };
}

