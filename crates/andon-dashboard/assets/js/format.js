// Formatting of times, durations, digests and commits, in one place so every
// page writes them the same way.

export function shortSha(sha) {
  return sha ? String(sha).slice(0, 8) : "";
}

/** `sha256:0123abcd…` → `0123abcd` (the part people compare by eye). */
export function shortDigest(d) {
  if (!d) return "—";
  const s = String(d);
  return s.startsWith("sha256:") ? s.slice(7, 19) : s.slice(0, 12);
}

export function duration(ms) {
  if (ms === undefined || ms === null || Number.isNaN(ms)) return "—";
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = ms / 1000;
  if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.round(s)}s`;
  const m = Math.floor(s / 60);
  const rs = Math.round(s % 60);
  if (m < 60) return rs ? `${m}m ${rs}s` : `${m}m`;
  const hh = Math.floor(m / 60);
  const rm = m % 60;
  if (hh < 48) return rm ? `${hh}h ${rm}m` : `${hh}h`;
  return `${Math.round(hh / 24)}d`;
}

export function ago(ms, now = Date.now()) {
  if (!ms) return "—";
  const d = now - ms;
  if (d < 5000) return "just now";
  if (d < 0) return "in the future";
  return `${duration(d).split(" ")[0]} ago`;
}

export function clock(ms) {
  if (!ms) return "—";
  const d = new Date(ms);
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" });
}

export function dateTime(ms) {
  if (!ms) return "—";
  return new Date(ms).toLocaleString([], {
    month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", hourCycle: "h23",
  });
}

export function firstLine(text, max = 90) {
  const line = String(text || "").split("\n")[0].trim();
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

export function percent(x, digits = 1) {
  if (x === undefined || x === null || Number.isNaN(x)) return "—";
  return `${(x * 100).toFixed(digits)}%`;
}

/** A deploy's phase as the API sends it: "in_progress", "paused" or {"finished": outcome}. */
export function phaseOf(phase) {
  if (!phase) return { done: false, label: "unknown" };
  if (typeof phase === "string") return { done: false, label: phase };
  if (typeof phase === "object" && phase.finished) return { done: true, label: String(phase.finished) };
  return { done: false, label: JSON.stringify(phase) };
}

export function label(s) {
  return String(s || "").replaceAll("_", " ");
}
