// A DORA key over time: one bar per period, coloured by the performance
// band the server gave that period (elite, high, medium, low). The bands
// come from the server's own answer for each period, so the picture and
// the numbers can never disagree about where a threshold lies.

import { s, h } from "./dom.js";
import { clock, dateTime } from "./format.js";

const W = 420;
const HT = 130;
const L = 8;
const R = 8;
const T = 8;
const B = 20;

/**
 * points: [{since, until, value (number|null), band (string|null)}],
 * oldest first. fmt(value) → text.
 */
export function trendChart(title, points, fmt, { short = false } = {}) {
  const vals = points.map((p) => p.value).filter((v) => v !== null && v !== undefined);
  const max = Math.max(...vals, 0) || 1;
  const n = Math.max(1, points.length);
  const slot = (W - L - R) / n;
  const y = (v) => T + (1 - v / max) * (HT - T - B);
  const stamp = (ms) => (short ? clock(ms) : dateTime(ms));
  const bars = points.map((p, i) => {
    const x = L + i * slot + slot * 0.12;
    const w = slot * 0.76;
    if (p.value === null || p.value === undefined) {
      return s("rect", { x, y: HT - B - 2, width: w, height: 2, class: "bar-none" },
        s("title", null, `${stamp(p.since)}–${stamp(p.until)}: no data`));
    }
    const top = y(Number(p.value));
    return s("rect", {
      x, y: Math.min(top, HT - B - 2), width: w, height: Math.max(2, HT - B - top),
      class: ["bar", p.band ? `bandfill-${p.band}` : "bandfill-none"], dataset: { band: p.band || "" },
    }, s("title", null, `${stamp(p.since)}–${stamp(p.until)}: ${fmt(Number(p.value))}${p.band ? ` (${p.band})` : ""}`));
  });
  const first = points[0];
  const last = points[points.length - 1];
  const axis = first ? [
    s("line", { x1: L, x2: W - R, y1: HT - B, y2: HT - B, class: "gridline" }),
    s("text", { x: L, y: HT - 5, class: "axis" }, stamp(first.since)),
    s("text", { x: W - R, y: HT - 5, class: "axis", "text-anchor": "end" }, stamp(last.until)),
    s("text", { x: L, y: T + 8, class: "axis" }, `max ${fmt(max)}`),
  ] : [];
  const withData = points.filter((p) => p.value !== null && p.value !== undefined);
  const summary = withData.length
    ? `${title}: ${withData.length} of ${points.length} periods with data; latest ${fmt(Number(withData[withData.length - 1].value))}${withData[withData.length - 1].band ? `, ${withData[withData.length - 1].band}` : ""}`
    : `${title}: no data in any period`;
  return h("figure", { class: "chart trend" },
    h("figcaption", { class: "trend-title" }, title),
    s("svg", { viewBox: `0 0 ${W} ${HT}`, class: "trend-svg", role: "img", "aria-label": summary }, axis, bars));
}

/** The colour key shared by every trend chart. */
export function bandLegend() {
  return h("p", { class: "legend band-legend" }, ["elite", "high", "medium", "low"].map((b) =>
    h("span", { class: "legend-item" }, h("span", { class: ["swatch", `bandfill-${b}`], "aria-hidden": "true" }), b)));
}
