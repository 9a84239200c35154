// A run's jobs as a graph: columns are layers by dependency depth (a job
// sits one column right of its deepest need), rows are ordered by the
// average row of their needs to keep edges short. Drawn as SVG links, so
// each job is reachable with Tab and opens its log with Enter.

import { s } from "./dom.js";
import { duration } from "./format.js";

const W = 196;
const H = 56;
const GX = 56;
const GY = 14;
const PAD = 10;

/** Layers and rows for jobs [{name, deps}]: {pos: Map(name → {col,row}), cols, rows}. */
export function layout(jobs) {
  const byName = new Map(jobs.map((j) => [j.name, j]));
  const depth = new Map();
  const visit = (name, stack) => {
    if (depth.has(name)) return depth.get(name);
    if (stack.has(name)) return 0; // a cycle cannot come from the server; never loop on one
    stack.add(name);
    const j = byName.get(name);
    let d = 0;
    for (const dep of (j && j.deps) || []) {
      if (byName.has(dep)) d = Math.max(d, visit(dep, stack) + 1);
    }
    stack.delete(name);
    depth.set(name, d);
    return d;
  };
  jobs.forEach((j) => visit(j.name, new Set()));
  const cols = [];
  for (const j of jobs) {
    const d = depth.get(j.name);
    (cols[d] ||= []).push(j.name);
  }
  const row = new Map();
  cols.forEach((c) => c.forEach((n, i) => row.set(n, i)));
  // Two sweeps of the barycenter heuristic.
  for (let sweep = 0; sweep < 2; sweep++) {
    for (let c = 1; c < cols.length; c++) {
      const key = (n) => {
        const deps = (byName.get(n).deps || []).filter((d) => row.has(d));
        return deps.length ? deps.reduce((a, d) => a + row.get(d), 0) / deps.length : row.get(n);
      };
      const keyed = cols[c].map((n, i) => [key(n), i, n]);
      keyed.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
      cols[c] = keyed.map((k) => k[2]);
      cols[c].forEach((n, i) => row.set(n, i));
    }
  }
  const pos = new Map();
  cols.forEach((c, ci) => c.forEach((n, ri) => pos.set(n, { col: ci, row: ri })));
  return { pos, cols: cols.length, rows: Math.max(0, ...cols.map((c) => c.length)) };
}

function clip(text, max) {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

export function jobDuration(j, now) {
  if (j.status === "running" && j.started_at_ms) return now - j.started_at_ms;
  if (!j.duration_ms && ["pending", "skipped", "cancelled"].includes(j.status)) return null;
  return j.duration_ms || 0;
}

/** The SVG for a run's jobs; `href(job)` gives each node's link. */
export function drawDag(jobs, { href, selected, now = Date.now() }) {
  const { pos, cols, rows } = layout(jobs);
  const width = PAD * 2 + cols * W + Math.max(0, cols - 1) * GX;
  const height = PAD * 2 + rows * H + Math.max(0, rows - 1) * GY;
  const xy = (n) => {
    const p = pos.get(n);
    return { x: PAD + p.col * (W + GX), y: PAD + p.row * (H + GY) };
  };
  const status = new Map(jobs.map((j) => [j.name, j.status]));
  const edges = [];
  for (const j of jobs) {
    for (const d of j.deps || []) {
      if (!pos.has(d)) continue;
      const a = xy(d);
      const b = xy(j.name);
      const x1 = a.x + W;
      const y1 = a.y + H / 2;
      const x2 = b.x;
      const y2 = b.y + H / 2;
      const mx = (x1 + x2) / 2;
      edges.push(s("path", {
        class: ["edge", `from-${status.get(d)}`],
        d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2 - 4},${y2}`,
        "marker-end": "url(#arrow)",
      }));
    }
  }
  const nodes = jobs.map((j) => {
    const { x, y } = xy(j.name);
    const dur = jobDuration(j, now);
    const tests = j.tests ? ` · ${j.tests.passed}✓ ${j.tests.failed}✕` : "";
    const meta = `${j.status.replaceAll("_", " ")}${dur !== null ? ` · ${duration(dur)}` : ""}${tests}`;
    return s("a", {
      href: href(j), class: ["node", `st-${j.status}`, selected === j.name && "selected"],
      "aria-label": `${j.name}: ${meta}${j.flaky ? ", flaky" : ""}`,
      dataset: { job: j.name, status: j.status },
    },
    s("title", null, `${j.name} (${j.stage})\n${meta}${j.flaky ? "\nflaky" : ""}`),
    s("rect", { x, y, width: W, height: H, rx: 8, class: "node-box" }),
    s("rect", { x, y, width: 5, height: H, rx: 2, class: "node-bar" }),
    s("text", { x: x + 14, y: y + 20, class: "node-name" }, clip(j.name, 24)),
    s("text", { x: x + 14, y: y + 36, class: "node-stage" }, clip(`${j.stage}${j.kind && j.kind !== j.stage ? ` · ${j.kind}` : ""}`, 30)),
    s("text", { x: x + 14, y: y + 50, class: "node-meta" }, clip(meta, 32)),
    j.flaky ? s("text", { x: x + W - 10, y: y + 20, class: "node-flaky", "text-anchor": "end" }, "flaky") : null);
  });
  return s("svg", {
    class: "dag", viewBox: `0 0 ${width} ${height}`, width, height, role: "group",
    "aria-label": `Jobs of the run as a graph, ${cols} layers`,
  },
  s("defs", null, s("marker", {
    id: "arrow", viewBox: "0 0 8 8", refX: 6, refY: 4, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse",
  }, s("path", { d: "M0,0 L8,4 L0,8 z", class: "arrow" }))),
  s("g", { class: "edges" }, edges),
  s("g", { class: "nodes" }, nodes));
}
