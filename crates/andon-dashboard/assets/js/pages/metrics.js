// The four keys (DORA) with their bands, over time, and the gear with its
// limiting factor: shown only when the server documents
// GET /api/v1/projects/{project}/metrics.
//
// The server computes every figure; the page asks for the whole range (the
// tiles and the gear) and for each of PERIODS equal slices of it (the
// charts), so a chart's bar is exactly what `andon metrics --since --until`
// prints for that slice. The range starts at the smallest preset that
// covers the project's first release, so a young project (the demo) shows
// minutes, not thirty empty days.

import { h, fill } from "../dom.js";
import { get, seg } from "../api.js";
import { pageHeader, errorBox, throttle, section, facts } from "../ui.js";
import { trendChart, bandLegend } from "../trend.js";
import { duration, percent, label, dateTime } from "../format.js";

const HOUR = 3600 * 1000;
const DAY = 24 * HOUR;
const RANGES = [
  ["1h", "1 hour", HOUR],
  ["24h", "24 hours", DAY],
  ["7d", "7 days", 7 * DAY],
  ["30d", "30 days", 30 * DAY],
  ["90d", "90 days", 90 * DAY],
];
const PERIODS = 12;

const perDay = (v) => `${v < 1 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : Math.round(v)} / day`;
const KEYS = [
  ["deployment_frequency_per_day", "Deployment frequency", perDay, "deployment_frequency"],
  ["lead_time_median_s", "Lead time for changes (median)", (v) => duration(v * 1000), "lead_time"],
  ["change_failure_rate", "Change failure rate", (v) => percent(v), "change_failure_rate"],
  ["time_to_restore_median_s", "Time to restore (median)", (v) => duration(v * 1000), "time_to_restore"],
  ["time_to_green_median_s", "Time to green (trunk)", (v) => duration(v * 1000), "time_to_green"],
];

function bandOf(bands, key, field) {
  if (!bands) return null;
  return bands[key] || bands[field] || null;
}

const iso = (ms) => new Date(ms).toISOString();

/** The smallest preset range that reaches back to `first` (ms). */
export function pickRange(first, now = Date.now()) {
  if (!first) return "30d";
  const found = RANGES.find(([, , span]) => now - span <= first);
  return found ? found[0] : "90d";
}

export function metricsPage(ctx, route) {
  const p = route.project;
  const body = h("div", { class: "stack" }, h("p", { class: "muted" }, "Loading…"));
  const sub = h("span", null, "The four keys, their bands, and the gear they put this team in.");
  let range = null;
  const buttons = RANGES.map(([key, text]) => {
    const b = h("button", { type: "button", class: "btn small", dataset: { range: key }, "aria-pressed": "false" }, text);
    b.addEventListener("click", () => {
      range = key;
      paintButtons();
      load();
    });
    return b;
  });
  const paintButtons = () => buttons.forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.range === range)));
  const picker = h("div", { class: "range-pick", role: "group", "aria-label": "Period" }, buttons);
  const el = h("div", { class: "page" }, pageHeader(`Metrics of ${p}`, sub, picker), body);
  let alive = true;
  let generation = 0;

  const load = async () => {
    const mine = ++generation;
    const base = `/api/v1/projects/${seg(p)}/metrics`;
    let m;
    let slices;
    try {
      if (!range) {
        const deploys = await get(`/api/v1/projects/${seg(p)}/deploys`).catch(() => []);
        const first = Math.min(...deploys.map((d) => d.requested_at_ms).filter(Boolean));
        range = pickRange(Number.isFinite(first) ? first : null);
        paintButtons();
      }
      const span = RANGES.find(([k]) => k === range)[2];
      const until = Date.now();
      const since = until - span;
      const step = span / PERIODS;
      const bounds = Array.from({ length: PERIODS }, (_, i) => [since + i * step, since + (i + 1) * step]);
      [m, slices] = await Promise.all([
        get(`${base}?since=${iso(since)}&until=${iso(until)}`),
        Promise.all(bounds.map(([a, b]) => get(`${base}?since=${iso(a)}&until=${iso(b)}`)
          .then((r) => ({ since: a, until: b, m: r })).catch(() => ({ since: a, until: b, m: null })))),
      ]);
    } catch (err) {
      if (alive && mine === generation) fill(body, errorBox(err));
      return;
    }
    if (!alive || !m || mine !== generation) return;
    const known = new Set(["bands", "gear", "project", "environment", "since_ms", "until_ms", "lead_time_p90_s"]);
    if (m.environment) {
      sub.textContent = `Environment ${m.environment}, ${dateTime(m.since_ms)} to ${dateTime(m.until_ms)}; bands and the gear they put this team in.`;
    }
    const keys = KEYS.filter(([k]) => k in m);
    const tiles = keys.map(([k, title, fmt, bandKey]) => {
      known.add(k);
      const v = m[k];
      const band = bandOf(m.bands, bandKey, k);
      return h("div", { class: "tile", dataset: { key: k } },
        h("div", { class: "tile-title" }, title),
        v === null || v === undefined
          ? h("div", { class: "tile-value none" }, "no data yet")
          : h("div", { class: "tile-value" }, fmt(Number(v))),
        k === "lead_time_median_s" && m.lead_time_p90_s !== null && m.lead_time_p90_s !== undefined
          ? h("div", { class: "small muted" }, `p90 ${duration(m.lead_time_p90_s * 1000)}`) : null,
        band ? h("span", { class: ["tag", `band-${String(band).toLowerCase()}`] }, label(band)) : null);
    });
    const short = range === "1h" || range === "24h";
    const charts = keys.filter(([, , , bandKey]) => bandKey !== "time_to_green").map(([k, title, fmt, bandKey]) =>
      trendChart(title, slices.map((sl) => ({
        since: sl.since, until: sl.until,
        value: sl.m ? sl.m[k] : null,
        band: sl.m ? bandOf(sl.m.bands, bandKey, k) : null,
      })), fmt, { short }));
    const gear = m.gear;
    const rest = Object.entries(m).filter(([k, v]) => !known.has(k) && (v === null || typeof v !== "object"));
    fill(body,
      h("div", { class: "tiles" }, tiles),
      gear ? section("Gear", h("div", { class: "gear", dataset: { gear: String(gear.number) } },
        h("div", { class: "gear-num", role: "img", "aria-label": `gear ${gear.number} of 5` }, String(gear.number ?? "?")),
        h("div", null,
          h("p", { class: "gear-name" }, `Gear ${gear.number}: ${gear.name || ""}`),
          gear.limiting_factor ? h("p", { class: "limiting" }, h("strong", null, "Limiting factor: "), label(gear.limiting_factor)) : null,
          gear.explanation ? h("p", { class: "muted" }, gear.explanation) : null)))
        : section("Gear", h("p", { class: "muted" }, "No gear yet: it needs successful production deployments in the period.")),
      section(`Over time (${PERIODS} periods of ${duration(RANGES.find(([k]) => k === range)[2] / PERIODS)})`,
        bandLegend(), h("div", { class: "trends" }, charts)),
      rest.length ? section("Other figures", facts(rest.map(([k, v]) => [label(k), v === null ? "—" : String(v)]))) : null);
  };
  const reload = throttle(load, 2000);
  load();
  return {
    el,
    onEvent: (e) => {
      if (["deploy_finished", "run_finished", "incident_opened", "incident_resolved", "line_released"].includes(e.type)) reload();
    },
    dispose: () => { alive = false; },
  };
}
