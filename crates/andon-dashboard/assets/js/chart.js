// The traffic split of a release over time: a stacked step chart of each
// version's weight, drawn from `traffic_shifted` events (the router's
// weights change in steps, so steps are the truthful picture).

import { s, h } from "./dom.js";
import { shortDigest, clock } from "./format.js";

const HT = 170;
const L = 36;
const R = 10;
const T = 10;
const B = 24;

/** Stable colour slot per version: the first seen is the incumbent. */
function slots(points) {
  const order = [];
  for (const p of points) for (const v of Object.keys(p.weights)) if (!order.includes(v)) order.push(v);
  return order;
}

/**
 * points: [{at, weights: {version: percent}}] oldest first; end: the time
 * the chart runs to (now while the release is live).
 */
export function trafficChart(points, { start, end, names = {}, width = 640 } = {}) {
  const W = width;
  if (!points.length) return h("p", { class: "muted small" }, "No traffic shifts recorded for this release.");
  const versions = slots(points);
  const t0 = Math.min(start || points[0].at, points[0].at);
  const t1 = Math.max(end || Date.now(), points[points.length - 1].at + 1000);
  const x = (t) => L + ((t - t0) / Math.max(1, t1 - t0)) * (W - L - R);
  const y = (pct) => T + (1 - pct / 100) * (HT - T - B);
  const bands = [];
  points.forEach((p, i) => {
    const xa = x(p.at);
    const xb = x(i + 1 < points.length ? points[i + 1].at : t1);
    let acc = 0;
    versions.forEach((v, vi) => {
      const w = Number(p.weights[v] || 0);
      if (w <= 0) return;
      bands.push(s("rect", {
        x: xa, y: y(acc + w), width: Math.max(0.5, xb - xa), height: y(acc) - y(acc + w),
        class: `series s${vi % 6}`,
      }, s("title", null, `${names[v] || shortDigest(v)}: ${w}% from ${clock(p.at)}`)));
      acc += w;
    });
  });
  const grid = [0, 25, 50, 75, 100].map((g) => [
    s("line", { x1: L, x2: W - R, y1: y(g), y2: y(g), class: "gridline" }),
    s("text", { x: L - 6, y: y(g) + 4, class: "axis", "text-anchor": "end" }, `${g}%`),
  ]);
  const ticks = [t0, (t0 + t1) / 2, t1].map((t, i) => s("text", {
    x: x(t), y: HT - 6, class: "axis", "text-anchor": i === 0 ? "start" : i === 2 ? "end" : "middle",
  }, clock(t)));
  const last = points[points.length - 1].weights;
  const summary = versions.map((v) => `${names[v] || shortDigest(v)} ${last[v] || 0}%`).join(", ");
  return h("figure", { class: "chart" },
    s("svg", { viewBox: `0 0 ${W} ${HT}`, class: "traffic", role: "img", "aria-label": `Traffic split over time; now ${summary}` },
      grid, bands, ticks),
    h("figcaption", { class: "legend" }, versions.map((v, vi) =>
      h("span", { class: "legend-item" }, h("span", { class: ["swatch", `s${vi % 6}`], "aria-hidden": "true" }),
        h("span", { class: "mono" }, names[v] || shortDigest(v)), ` ${last[v] || 0}%`))));
}
