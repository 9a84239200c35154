// Feature flags (server-wide): each flag's state per environment, its
// rollout and rules, stale flags, and the quick levers — on/off and the
// rollout percentage — which the server checks against the token's role
// and requires a reason for (it goes in the audit log). Each flag's own
// page (pages/flag.js) adds the kill switch and the audit history.
// Shown only when the server documents GET /api/v1/flags.

import { h, fill } from "../dom.js";
import { get, has, seg } from "../api.js";
import { pill, pageHeader, errorBox, throttle, empty, section, table } from "../ui.js";
import { reasonField, envLevers } from "./flag.js";
import { ago } from "../format.js";

export function flagsPage() {
  const body = h("div", null, h("p", { class: "muted" }, "Loading…"));
  const out = h("div", { role: "alert", class: "action-out" });
  const reason = reasonField("flag-reason");
  const el = h("div", { class: "page" },
    pageHeader("Feature flags", "Per-environment state as the server evaluates it (also over OFREP). Open a flag for its audit history and kill switch."),
    reason.el, out, body);
  let alive = true;
  let reload = () => {};

  const load = async () => {
    let data;
    let stale = [];
    try {
      data = await get("/api/v1/flags");
      if (has("GET", "/api/v1/flags/stale")) stale = await get("/api/v1/flags/stale").then((r) => (r && r.flags) || []).catch(() => []);
    } catch (err) {
      if (alive) fill(body, errorBox(err));
      return;
    }
    if (!alive) return;
    const flags = (data && data.flags) || [];
    if (!flags.length) {
      fill(body, empty("No flags yet.", "Declare them under `flags:` in andon.yaml and run `andon flags apply`, or import them from Unleash."));
      return;
    }
    const envs = [];
    for (const f of flags) for (const e of Object.keys(f.environments || {})) if (!envs.includes(e)) envs.push(e);
    fill(body,
      h("section", { class: "panel" }, table([
        { title: "Flag", cell: (f) => h("div", null, h("a", { class: "mono", href: `#/flags/${seg(f.key)}` }, f.key), f.description ? h("div", { class: "small muted" }, f.description) : null), class: "wrap" },
        { title: "Kind", cell: (f) => [f.kind, f.temporary ? h("span", { class: "tag" }, "temporary") : null] },
        ...envs.map((env) => ({
          title: env,
          cell: (f) => {
            const e = (f.environments || {})[env];
            if (!e) return h("span", { class: "muted" }, "—");
            const bits = [];
            if (e.rollout !== null && e.rollout !== undefined) bits.push(`${e.rollout}%`);
            if (e.rules) bits.push(`${e.rules} rule${e.rules === 1 ? "" : "s"}`);
            return h("div", { class: "flag-env" },
              h("div", null, e.enabled ? pill("passed", "on") : pill("skipped", "off"), h("span", { class: "small muted" }, ` ${bits.join(" · ")}`)),
              h("div", { class: "flag-levers" }, envLevers(f.key, env, e, { reason: reason.value, out, onDone: () => reload() })));
          },
        })),
        { title: "Owner", cell: (f) => f.owner || "—", class: "hide-sm" },
        { title: "Changed", cell: (f) => (f.last_changed_ms ? ago(f.last_changed_ms) : "—"), class: "hide-sm" },
      ], flags, { caption: "Feature flags" })),
      stale.length ? section("Stale flags", h("ul", { class: "plain" }, stale.map((s) =>
        h("li", null, h("span", { class: "mono" }, s.key), h("span", { class: "muted small" }, ` serves ${s.variant} everywhere, unchanged for ${s.unchanged_days} days`))))) : null);
  };
  reload = throttle(load, 500);
  load();
  return {
    el,
    onEvent: (e) => { if (e.type === "flag_changed" || e.type === "segment_changed" || e.type === "__backlog") reload(); },
    dispose: () => { alive = false; },
  };
}
