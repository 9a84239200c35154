// One run: its jobs as a graph with states and durations, the selected
// job's log as it is written, test results, flaky jobs and artifacts.
// Events for this run re-read it, so nothing here needs a reload.

import { h, fill } from "../dom.js";
import { get, seg, has } from "../api.js";
import { readSse } from "../sse.js";
import { commitInfo } from "../events.js";
import { drawDag, jobDuration } from "../dag.js";
import { pill, pageHeader, section, errorBox, throttle, actionButton, facts, table, empty } from "../ui.js";
import { shortSha, duration, dateTime, firstLine } from "../format.js";

const MAX_LINES = 20000;

function pickJob(run, wanted) {
  const jobs = run.jobs || [];
  if (wanted && jobs.some((j) => j.name === wanted)) return wanted;
  const by = (st) => jobs.find((j) => j.status === st);
  const j = by("running") || by("failed") || by("timed_out") || jobs[0];
  return j ? j.name : null;
}

/**
 * Jobs whose outcome differs between runs of the same commit: the same
 * code failed once and passed once, so the job (or a test in it) is flaky
 * even when no single run retried it. [{job, passed: [ids], failed: [ids]}]
 */
export function flakyAcross(run, runs) {
  const same = (runs || []).filter((r) => r.commit === run.commit && r.project === run.project);
  if (!same.some((r) => r.id === run.id)) same.push(run);
  const by = new Map();
  for (const r of same) {
    for (const j of r.jobs || []) {
      const st = j.status === "timed_out" ? "failed" : j.status;
      if (st !== "passed" && st !== "failed") continue;
      if (!by.has(j.name)) by.set(j.name, { job: j.name, passed: [], failed: [] });
      by.get(j.name)[st].push(r.id);
    }
  }
  return [...by.values()].filter((x) => x.passed.length && x.failed.length);
}

function runDuration(run, now) {
  if (!run.started_at_ms) return null;
  return (run.finished_at_ms || now) - run.started_at_ms;
}

/** The log of one job, following it live over SSE until the job ends. */
function logView(runId, job) {
  const pre = h("pre", { class: "log", tabindex: "0", "aria-label": `Log of ${job}` });
  const state = h("span", { class: "muted small" }, "connecting…");
  const ctl = new AbortController();
  let count = 0;
  let pending = [];
  let frame = 0;
  const flush = () => {
    frame = 0;
    const stick = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 24;
    const frag = document.createDocumentFragment();
    for (const l of pending) {
      frag.append(h("span", { class: /\b(error|failed|panicked|FAIL)\b/i.test(l) ? "ln err" : "ln" }, l));
    }
    pending = [];
    pre.append(frag);
    while (pre.childElementCount > MAX_LINES) pre.firstElementChild.remove();
    if (stick) pre.scrollTop = pre.scrollHeight;
  };
  readSse(`/api/v1/runs/${runId}/jobs/${seg(job)}/log?follow=true`, {
    signal: ctl.signal,
    onOpen: () => { state.textContent = "following"; },
    onMessage: (m) => {
      if (m.event === "end") {
        state.textContent = `${count} lines · finished`;
        return;
      }
      if (m.event !== "line") return;
      count += 1;
      pending.push(m.data);
      if (!frame) frame = requestAnimationFrame(flush);
      if (state.textContent !== "following") state.textContent = "following";
    },
  }).then(() => {
    if (!ctl.signal.aborted) {
      if (!count) state.textContent = "no output";
      else if (!/finished/.test(state.textContent)) state.textContent = `${count} lines`;
    }
  }).catch((err) => {
    state.textContent = `log unavailable: ${err.message}`;
  });
  return {
    el: h("div", { class: "log-wrap" }, h("div", { class: "log-head" }, h("h3", null, job), state), pre),
    dispose: () => ctl.abort(),
  };
}

export function runPage(ctx, route) {
  const id = route.id;
  let wanted = route.job;
  let run = null;
  let artifacts = null;
  let siblings = null;
  let siblingsFor = "";
  let log = null;
  let alive = true;

  const head = h("div");
  const dagBox = h("div", { class: "dag-scroll" });
  const jobsBox = h("div");
  const logBox = h("div", { class: "log-panel" });
  const sideBox = h("div", { class: "stack" });
  const out = h("div", { role: "alert", class: "action-out" });
  const el = h("div", { class: "page" }, head, out,
    h("section", { class: "panel" }, h("h2", { class: "panel-title" }, "Pipeline"), dagBox),
    h("div", { class: "two-col" },
      h("div", { class: "stack" }, h("section", { class: "panel" }, h("h2", { class: "panel-title" }, "Jobs"), jobsBox), sideBox),
      h("section", { class: "panel" }, h("h2", { class: "panel-title" }, "Log"), logBox)));

  const renderHead = () => {
    const c = commitInfo(run.commit);
    const now = Date.now();
    const actions = [];
    const running = run.status === "running" || run.status === "queued";
    if (running && has("POST", "/api/v1/runs/{id}/cancel")) {
      actions.push(actionButton({ text: "Cancel run", path: `/api/v1/runs/${id}/cancel`, confirm: "Confirm cancel", out, kind: "danger" }));
    }
    if (!running && has("POST", "/api/v1/projects/{project}/runs")) {
      actions.push(actionButton({
        text: "Run again", path: `/api/v1/projects/${seg(run.project)}/runs`, body: { ref: run.commit }, out,
        onDone: (res) => { if (res && res.id) ctx.go(`#/runs/${res.id}`); },
      }));
    }
    fill(head, pageHeader(
      h("span", null, `Run #${run.id} `, pill(run.status)),
      h("span", null,
        h("a", { href: `#/p/${seg(run.project)}/runs` }, run.project), " · ", run.branch, " · ",
        h("span", { class: "mono" }, shortSha(run.commit)),
        c ? ` · ${c.author ? `${c.author}: ` : ""}“${firstLine(c.message, 80)}”` : ""),
      ...actions));
    head.append(facts([
      ["Trigger", typeof run.trigger === "string" ? run.trigger : Object.entries(run.trigger || {}).map(([k, v]) => `${k} (${v})`).join("")],
      ["Queued", dateTime(run.queued_at_ms)],
      ["Duration", h("span", { class: "run-duration" }, duration(runDuration(run, now)))],
      run.reason ? ["Reason", run.reason] : null,
    ]));
  };

  const renderDag = () => {
    const focused = document.activeElement && document.activeElement.closest && document.activeElement.closest(".node");
    const focusJob = focused ? focused.dataset.job : null;
    const jobs = run.jobs || [];
    if (!jobs.length) {
      fill(dagBox, empty(run.status === "queued" ? "Waiting for a runner…" : "This run has no jobs."));
      return;
    }
    fill(dagBox, drawDag(jobs, { href: (j) => `#/runs/${id}/${seg(j.name)}`, selected: wanted }));
    if (focusJob) {
      const again = [...dagBox.querySelectorAll(".node")].find((n) => n.dataset.job === focusJob);
      if (again) again.focus();
    }
  };

  const renderJobs = () => {
    const now = Date.now();
    fill(jobsBox, table([
      { title: "Job", cell: (j) => h("a", { href: `#/runs/${id}/${seg(j.name)}`, "aria-current": j.name === wanted ? "true" : null }, j.name) },
      { title: "Stage", cell: (j) => j.stage, class: "hide-sm" },
      { title: "Status", cell: (j) => [pill(j.status), j.flaky ? h("span", { class: "tag warn" }, "flaky") : null, j.allow_failure ? h("span", { class: "tag" }, "may fail") : null] },
      { title: "Time", cell: (j) => duration(jobDuration(j, now)), class: "num" },
      { title: "Tries", cell: (j) => String(j.attempts || 0), class: "num" },
      { title: "Tests", cell: (j) => (j.tests ? h("span", null, h("span", { class: "tx-green" }, `${j.tests.passed}✓`), " ", h("span", { class: j.tests.failed ? "tx-red" : "muted" }, `${j.tests.failed}✕`), " ", h("span", { class: "muted" }, `${j.tests.skipped}↷`)) : h("span", { class: "muted" }, "—")), class: "num" },
    ], run.jobs || [], { caption: "Jobs", rowClass: (j) => (j.name === wanted ? "selected" : null) }));
  };

  const renderSide = () => {
    const jobs = run.jobs || [];
    const totals = jobs.reduce((a, j) => {
      if (j.tests) {
        a.passed += j.tests.passed; a.failed += j.tests.failed; a.skipped += j.tests.skipped; a.any = true;
      }
      return a;
    }, { passed: 0, failed: 0, skipped: 0, any: false });
    const flaky = jobs.filter((j) => j.flaky);
    const across = flakyAcross(run, siblings).filter((x) => !flaky.some((j) => j.name === x.job));
    const runLinks = (ids) => ids.map((r, i) => [i ? ", " : "", h("a", { href: `#/runs/${r}` }, `#${r}`)]);
    const parts = [];
    parts.push(section("Test results", totals.any
      ? h("div", { class: "tests" },
        h("div", { class: "big-num tx-green" }, String(totals.passed), h("span", { class: "small muted" }, " passed")),
        h("div", { class: ["big-num", totals.failed ? "tx-red" : "muted"] }, String(totals.failed), h("span", { class: "small muted" }, " failed")),
        h("div", { class: "big-num muted" }, String(totals.skipped), h("span", { class: "small muted" }, " skipped")))
      : h("p", { class: "muted small" }, "No JUnit results reported by this run's jobs.")));
    parts.push(section("Flaky tests", flaky.length || across.length
      ? h("ul", { class: "plain flaky-list" },
        flaky.map((j) => h("li", { dataset: { job: j.name } }, h("a", { href: `#/runs/${id}/${seg(j.name)}` }, j.name), h("span", { class: "muted small" }, ` failed, then passed on try ${j.attempts}${j.tests ? ` (${j.tests.failed} test${j.tests.failed === 1 ? "" : "s"} failing in the last try)` : ""}`))),
        across.map((x) => h("li", { dataset: { job: x.job } }, h("a", { href: `#/runs/${id}/${seg(x.job)}` }, x.job),
          h("span", { class: "muted small" }, " on this same commit: passed in run ", runLinks(x.passed), ", failed in run ", runLinks(x.failed)))))
      : h("p", { class: "muted small" }, "None: every job passed or failed consistently on this commit.")));
    const arts = artifacts || jobs.flatMap((j) => Object.entries(j.artifacts || {}).map(([path, digest]) => ({ job: j.name, path, digest })));
    if (arts.length) {
      parts.push(section("Artifacts", h("ul", { class: "plain" }, arts.map((a) =>
        h("li", null, h("span", { class: "mono" }, a.path), h("span", { class: "muted small" }, ` from ${a.job} · `), h("span", { class: "mono small", title: a.digest }, String(a.digest).slice(0, 19)))))));
    }
    fill(sideBox, parts);
  };

  const renderLog = () => {
    const job = pickJob(run, wanted);
    if (log && log.job === job) return;
    if (log) log.view.dispose();
    if (!job) {
      log = null;
      fill(logBox, h("p", { class: "muted" }, "No job to show."));
      return;
    }
    log = { job, view: logView(id, job) };
    fill(logBox, log.view.el);
  };

  const render = () => {
    renderHead();
    renderDag();
    renderJobs();
    renderSide();
    renderLog();
  };

  const load = async () => {
    try {
      const r = await get(`/api/v1/runs/${id}`);
      if (!alive) return;
      run = r;
      if (!wanted) wanted = pickJob(run, null);
      if (!artifacts && ctx.features.artifacts && run.status !== "running" && run.status !== "queued") {
        artifacts = await get(`/api/v1/runs/${id}/artifacts`).catch(() => null);
      }
      const key = `${run.status}:${run.commit}`;
      if (siblingsFor !== key) {
        siblingsFor = key;
        siblings = await get(`/api/v1/projects/${seg(run.project)}/runs?limit=100`).catch(() => null);
      }
      if (!alive) return;
      ctx.setProject(run.project);
      render();
    } catch (err) {
      if (alive) fill(el, errorBox(err));
    }
  };
  const reload = throttle(load, 250);
  load();

  // Durations of running jobs tick without asking the server.
  const ticker = setInterval(() => {
    if (!run || !(run.status === "running" || run.status === "queued")) return;
    renderDag();
    renderJobs();
    const d = head.querySelector(".run-duration");
    if (d) d.textContent = duration(runDuration(run, Date.now()));
  }, 1000);

  return {
    el,
    onEvent: (e) => {
      if (e.run_id === id || e.type === "__backlog") reload();
    },
    update: (r) => {
      if (r.name !== "run" || r.id !== id) return false;
      wanted = r.job || wanted;
      if (run) {
        renderDag();
        renderJobs();
        renderLog();
      }
      return true;
    },
    dispose: () => {
      alive = false;
      clearInterval(ticker);
      if (log) log.view.dispose();
    },
  };
}

