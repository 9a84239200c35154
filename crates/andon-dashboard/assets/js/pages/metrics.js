// The four keys (DORA) with their bands, and the gear: shown only when the
// server documents GET /api/v1/projects/{project}/metrics.

import { h, fill } from "../dom.js";
import { get, seg } from "../api.js";
import { pageHeader, errorBox, throttle, section, facts } from "../ui.js";
import { duration, percent, label, dateTime } from "../format.js";

const KEYS = [
  ["deployment_frequency_per_day", "Deployment frequency", (v) => `${v < 1 ? v.toFixed(2) : v.toFixed(1)} / day`, "deployment_frequency"],
  ["lead_time_median_s", "Lead time for changes (median)", (v) => duration(v * 1000), "lead_time"],
  ["change_failure_rate", "Change failure rate", (v) => percent(v), "change_failure_rate"],
  ["time_to_restore_median_s", "Time to restore", (v) => duration(v * 1000), "time_to_restore"],
  ["time_to_green_median_s", "Time to green (trunk)", (v) => duration(v * 1000), "time_to_green"],
];

function bandOf(bands, key, field) {
  if (!bands) return null;
  return bands[key] || bands[field] || null;
}

export function metricsPage(ctx, route) {
  const p = route.project;
  const body = h("div", null, h("p", { class: "muted" }, "Loading…"));
  const sub = h("span", null, "The four keys over the last 30 days, with their bands and the gear they put this team in.");
  const el = h("div", { class: "page" }, pageHeader(`Metrics of ${p}`, sub), body);
  let alive = true;
  const load = async () => {
    let m;
    try {
      m = await get(`/api/v1/projects/${seg(p)}/metrics`);
    } catch (err) {
      if (alive) fill(body, errorBox(err));
      return;
    }
    if (!alive || !m) return;
    const known = new Set(["bands", "gear", "project", "environment", "since_ms", "until_ms", "lead_time_p90_s"]);
    if (m.environment) {
      sub.textContent = `Environment ${m.environment}${m.since_ms ? `, ${dateTime(m.since_ms)} to ${dateTime(m.until_ms)}` : ""}; bands and the gear they put this team in.`;
    }
    const tiles = KEYS.filter(([k]) => k in m).map(([k, title, fmt, bandKey]) => {
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
    const gear = m.gear;
    const rest = Object.entries(m).filter(([k, v]) => !known.has(k) && (v === null || typeof v !== "object"));
    fill(body,
      h("div", { class: "tiles" }, tiles),
      gear ? section("Gear", h("div", { class: "gear" },
        h("div", { class: "gear-num", "aria-label": `gear ${gear.number}` }, String(gear.number ?? "?")),
        h("div", null,
          h("p", { class: "gear-name" }, gear.name || ""),
          gear.limiting_factor ? h("p", null, h("strong", null, "Limiting factor: "), label(gear.limiting_factor)) : null,
          gear.explanation ? h("p", { class: "muted" }, gear.explanation) : null))) : null,
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
