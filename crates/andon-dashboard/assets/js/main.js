// Entry point: theme, token, the API description, the event stream, and
// hash routing (#/p/shop/envs) so every view has a URL that survives reload
// and the back button, with no server-side routes to keep in sync.

import { h, fill } from "./dom.js";
import { loadSpec, has, getToken, setToken, get, seg } from "./api.js";
import * as events from "./events.js";
import { errorBox } from "./ui.js";
import { loginPage } from "./pages/login.js";
import { projectsPage } from "./pages/projects.js";
import { streamPage } from "./pages/stream.js";
import { runsPage } from "./pages/runs.js";
import { runPage } from "./pages/run.js";
import { envsPage } from "./pages/envs.js";
import { deployPage } from "./pages/deploy.js";
import { flagsPage } from "./pages/flags.js";
import { boardPage } from "./pages/board.js";
import { metricsPage } from "./pages/metrics.js";
import { incidentsPage } from "./pages/incidents.js";
import { incidentPage } from "./pages/incident.js";
import { flagPage } from "./pages/flag.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");

const ctx = {
  features: {},
  projects: [],
  project: "",
  go: (hash) => { location.hash = hash; },
  refreshProjects,
  /** A page showing one project's run or release makes it the current one. */
  setProject(name) {
    if (!name || name === ctx.project) return;
    ctx.project = name;
    try { localStorage.setItem("andon.project", name); } catch { /* private mode */ }
    renderNav();
  },
};

// ---- theme: the system's by default, or the one the user picked --------
const THEMES = ["system", "light", "dark"];
function applyTheme(t) {
  if (t === "system") delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = t;
  const btn = document.getElementById("theme");
  btn.setAttribute("aria-label", `Colour theme: ${t} (change)`);
  btn.title = `Theme: ${t}`;
  document.getElementById("theme-icon").textContent = t === "light" ? "☀" : t === "dark" ? "☾" : "◐";
}
function initTheme() {
  let t = "system";
  try { t = localStorage.getItem("andon.theme") || "system"; } catch { /* private mode */ }
  applyTheme(THEMES.includes(t) ? t : "system");
  document.getElementById("theme").addEventListener("click", () => {
    const cur = document.documentElement.dataset.theme || "system";
    const next = THEMES[(THEMES.indexOf(cur) + 1) % THEMES.length];
    try { localStorage.setItem("andon.theme", next); } catch { /* private mode */ }
    applyTheme(next);
  });
}

// ---- features: which optional endpoints this server has ------------------
function detect() {
  ctx.features = {
    gate: has("GET", "/api/v1/projects/{project}/gate"),
    metrics: has("GET", "/api/v1/projects/{project}/metrics"),
    board: has("GET", "/api/v1/projects/{project}/board"),
    incidents: has("GET", "/api/v1/projects/{project}/incidents"),
    flags: has("GET", "/api/v1/flags"),
    artifacts: has("GET", "/api/v1/runs/{id}/artifacts"),
    cancel: has("POST", "/api/v1/runs/{id}/cancel"),
    trigger: has("POST", "/api/v1/projects/{project}/runs"),
  };
}

async function refreshProjects() {
  try {
    ctx.projects = await get("/api/v1/projects");
  } catch {
    ctx.projects = [];
  }
  renderNav();
  return ctx.projects;
}

// ---- routing ---------------------------------------------------------------
const projectPages = {
  stream: { title: "Value stream", page: streamPage },
  runs: { title: "Runs", page: runsPage },
  envs: { title: "Environments", page: envsPage },
  board: { title: "Board", page: boardPage, feature: "board" },
  metrics: { title: "Metrics", page: metricsPage, feature: "metrics" },
  incidents: { title: "Incidents", page: incidentsPage, feature: "incidents" },
};

function parse(hash) {
  const parts = hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] === "login") return { name: "login" };
  if (parts[0] === "flags" && parts[1]) return { name: "flag", key: parts[1] };
  if (parts[0] === "flags") return { name: "flags" };
  if (parts[0] === "incidents" && parts[1]) return { name: "incident", id: Number(parts[1]) };
  if (parts[0] === "p" && parts[1]) return { name: parts[2] || "stream", project: parts[1] };
  if (parts[0] === "runs" && parts[1]) return { name: "run", id: Number(parts[1]), job: parts[2] || null };
  if (parts[0] === "deploys" && parts[1]) return { name: "deploy", id: Number(parts[1]) };
  return { name: "projects" };
}

function renderNav(route = parse(location.hash)) {
  const cur = route.name;
  const link = (href, text, active) =>
    h("a", { href, class: ["nav-link", active && "active"], "aria-current": active ? "page" : null }, text);
  const items = [link("#/", "Projects", cur === "projects")];
  if (ctx.features.flags && getToken()) items.push(link("#/flags", "Flags", cur === "flags" || cur === "flag"));
  const p = ctx.project;
  const pick = h("select", { class: "project-pick", "aria-label": "Project" },
    ctx.projects.length ? null : h("option", { value: "" }, "no projects"),
    ctx.projects.map((pr) => h("option", { value: pr.name, selected: pr.name === p }, pr.name)));
  const projectItems = [];
  if (p && getToken()) {
    for (const [key, def] of Object.entries(projectPages)) {
      if (def.feature && !ctx.features[def.feature]) continue;
      projectItems.push(link(`#/p/${seg(p)}/${key}`, def.title, cur === key || (key === "runs" && cur === "run") || (key === "envs" && cur === "deploy") || (key === "incidents" && cur === "incident")));
    }
  }
  pick.addEventListener("change", () => {
    const name = pick.value;
    if (!name) return;
    const r = parse(location.hash);
    const sub = projectPages[r.name] ? r.name : "stream";
    ctx.go(`#/p/${seg(name)}/${sub}`);
  });
  fill(nav, items,
    getToken() && ctx.projects.length ? h("span", { class: "nav-sep", "aria-hidden": "true" }) : null,
    getToken() && ctx.projects.length ? h("span", { class: "pick-wrap" }, pick) : null,
    projectItems);
}

let current = null;
let renders = 0;

function show(route, { focus }) {
  if (current && current.dispose) current.dispose();
  current = null;
  renders += 1;
  if (route.project) {
    ctx.project = route.project;
    try { localStorage.setItem("andon.project", route.project); } catch { /* private mode */ }
  }
  renderNav(route);
  let view;
  try {
    if (route.name === "login") view = loginPage(ctx, { onSignedIn: signedIn });
    else if (!getToken()) {
      ctx.go("#/login");
      return;
    } else if (route.name === "projects") view = projectsPage(ctx);
    else if (route.name === "run") view = runPage(ctx, route);
    else if (route.name === "flags" && ctx.features.flags) view = flagsPage(ctx);
    else if (route.name === "flag" && ctx.features.flags) view = flagPage(ctx, route);
    else if (route.name === "incident" && ctx.features.incidents) view = incidentPage(ctx, route);
    else if (route.name === "deploy") view = deployPage(ctx, route);
    else if (projectPages[route.name]) {
      const def = projectPages[route.name];
      if (def.feature && !ctx.features[def.feature]) {
        view = { el: errorBox(`This server has no ${def.title.toLowerCase()} API.`) };
      } else {
        view = def.page(ctx, route);
      }
    } else view = projectsPage(ctx);
  } catch (err) {
    view = { el: errorBox(err) };
  }
  current = view;
  fill(main, view.el);
  const title = main.querySelector("h1");
  document.title = title ? `${title.textContent} · Andon` : "Andon";
  if (focus) main.focus({ preventScroll: false });
}

function signedIn() {
  document.getElementById("signout").hidden = false;
  events.reset();
  events.start();
  refreshProjects().then((list) => {
    if (!ctx.project && list.length) ctx.project = list[0].name;
    ctx.go("#/");
    renderNav();
  });
}

function initLive() {
  const live = document.getElementById("live");
  events.onStatus((s) => {
    live.dataset.state = s;
    live.textContent = s === "live" ? "live" : s === "connecting" ? "connecting…" : "offline";
  });
  events.subscribe((e) => {
    if (e.type === "project_added" || e.type === "project_removed") refreshProjects();
    if (current && current.onEvent) current.onEvent(e);
  });
}

function initChrome() {
  document.getElementById("skip").addEventListener("click", () => main.focus());
  const out = document.getElementById("signout");
  out.addEventListener("click", () => {
    setToken("");
    events.reset();
    out.hidden = true;
    ctx.projects = [];
    ctx.go("#/login");
  });
  window.addEventListener("andon:unauthorized", () => {
    if (parse(location.hash).name === "login") return;
    setToken("");
    events.reset();
    out.hidden = true;
    ctx.go("#/login");
  });
}

async function boot() {
  initTheme();
  initChrome();
  try {
    await loadSpec();
  } catch (err) {
    fill(main, errorBox(`Cannot reach the Andon server: ${err.message}`));
    return;
  }
  detect();
  try { ctx.project = localStorage.getItem("andon.project") || ""; } catch { /* private mode */ }
  initLive();
  if (getToken()) {
    document.getElementById("signout").hidden = false;
    await refreshProjects();
    if (getToken()) events.start();
  }
  if (ctx.project && !ctx.projects.some((p) => p.name === ctx.project)) ctx.project = "";
  if (!ctx.project && ctx.projects.length) ctx.project = ctx.projects[0].name;
  window.addEventListener("hashchange", () => {
    const route = parse(location.hash);
    // Same page, another detail (a job of the same run): let it update in place.
    if (current && current.update && current.update(route)) {
      renderNav(route);
      return;
    }
    show(route, { focus: true });
  });
  show(parse(location.hash), { focus: false });
}

export const app = { ctx, renders: () => renders };
boot();
