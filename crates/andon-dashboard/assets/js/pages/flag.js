// One feature flag: its state in each environment with the levers to
// change it — on/off, the rollout percentage, the kill switch — and its
// audit history (who, when, why, what changed). Every change carries the
// reason typed above the levers; the server refuses one without it, and
// checks the token's role and environment scope, and that refusal is what
// the page shows.

import { h, fill } from "../dom.js";
import { get, put, has, seg } from "../api.js";
import { pill, pageHeader, section, errorBox, throttle, actionButton, table, facts } from "../ui.js";
import { dateTime, ago } from "../format.js";

/** The reason input shared by every lever of a page. */
export function reasonField(id) {
  const input = h("input", {
    id, type: "text", size: 44, maxlength: 1000, placeholder: "why (kept in the audit log)", "aria-describedby": `${id}-hint`,
  });
  const el = h("div", { class: "inline-form reason-form" },
    h("label", { for: id, class: "small" }, "Reason for changes"), input,
    h("span", { id: `${id}-hint`, class: "muted small" }, "required; shown in the flag's history"));
  return { el, value: () => input.value.trim(), input };
}

/**
 * The levers of one flag in one environment: a toggle (read the flag,
 * flip `enabled`, write it back) and a rollout percentage. `state` is the
 * list's summary ({enabled, rollout}); `reason()` is read at click time.
 */
export function envLevers(key, env, state, { reason, out, onDone }) {
  const cells = [];
  if (has("PUT", "/api/v1/flags/{key}") && has("GET", "/api/v1/flags/{key}")) {
    const on = !!state.enabled;
    cells.push(actionButton({
      text: on ? "Turn off" : "Turn on", label: `Turn ${key} ${on ? "off" : "on"} in ${env}`,
      kind: on ? "small danger" : "small primary", out, onDone,
      call: async () => {
        const cur = await get(`/api/v1/flags/${seg(key)}`);
        const flag = cur.flag;
        flag.environments = flag.environments || {};
        flag.environments[env] = { ...(flag.environments[env] || {}), enabled: !on };
        return put(`/api/v1/flags/${seg(key)}`, { flag, reason: reason() });
      },
    }));
  }
  if (has("POST", "/api/v1/flags/{key}/rollout")) {
    const input = h("input", {
      type: "number", min: 0, max: 100, step: 1, value: state.rollout ?? 100, class: "num-input",
      "aria-label": `Rollout of ${key} in ${env}, percent`,
    });
    cells.push(input, actionButton({
      text: "Set %", label: `Set the rollout of ${key} in ${env}`, kind: "small", out, onDone,
      path: `/api/v1/flags/${seg(key)}/rollout`,
      body: () => ({ environment: env, percentage: Number(input.value), reason: reason() }),
    }));
  }
  return cells;
}

function historyList(history) {
  const items = [...(history || [])].reverse();
  if (!items.length) return h("p", { class: "muted small" }, "No recorded change.");
  return h("ol", { class: "history-list" }, items.map((c) =>
    h("li", { class: "history-item", dataset: { seq: String(c.seq) } },
      h("div", null,
        pill(c.action === "deleted" ? "failed" : c.action === "created" ? "passed" : "running", c.action), " ",
        h("strong", null, c.actor), h("span", { class: "muted small" }, ` · ${dateTime(c.at_ms)} · event ${c.seq}`)),
      h("p", { class: "history-reason" }, "“", c.reason || "no reason given", "”"),
      (c.changes || []).length
        ? h("ul", { class: "changes mono small" }, c.changes.map((l) => h("li", null, l)))
        : null)));
}

export function flagPage(ctx, route) {
  const key = route.key;
  const out = h("div", { role: "alert", class: "action-out" });
  const reason = reasonField("flag-reason");
  const head = h("div");
  const body = h("div", { class: "stack" }, h("p", { class: "muted" }, "Loading…"));
  const el = h("div", { class: "page" }, head, reason.el, out, body);
  let alive = true;
  let reload = () => {};

  const load = async () => {
    let d;
    try {
      d = await get(`/api/v1/flags/${seg(key)}`);
    } catch (err) {
      if (alive) fill(body, errorBox(err));
      return;
    }
    if (!alive) return;
    const f = d.flag || {};
    const envs = Object.entries(f.environments || {});
    const acts = [];
    if (has("POST", "/api/v1/flags/{key}/kill")) {
      acts.push(actionButton({
        text: "Kill switch", label: `Kill ${key} in every environment`, kind: "danger", confirm: "Confirm: off everywhere", out,
        onDone: () => reload(), path: `/api/v1/flags/${seg(key)}/kill`, body: () => ({ reason: reason.value() }),
      }));
    }
    fill(head, pageHeader(
      h("span", { class: "mono" }, key),
      h("span", null, h("a", { href: "#/flags" }, "Flags"), ` · ${f.kind || "bool"}${f.description ? ` · ${f.description}` : ""}`),
      ...acts));
    const seen = d.last_evaluated_ms || {};
    fill(body,
      section("Environments", envs.length ? table([
        { title: "Environment", cell: ([name]) => name },
        { title: "State", cell: ([, e]) => (e.enabled ? pill("passed", "on") : pill("skipped", "off")) },
        { title: "Rules", cell: ([, e]) => String((e.rules || []).length), class: "num" },
        { title: "Last evaluated", cell: ([name]) => (seen[name] ? ago(seen[name]) : "—"), class: "hide-sm" },
        { title: "Change", cell: ([name, e]) => {
          const catchAll = [...(e.rules || [])].reverse().find((r) => !(r.conditions || []).length && !(r.segments || []).length);
          const rollout = catchAll && catchAll.rollout ? catchAll.rollout.percentage : null;
          return h("div", { class: "flag-levers" }, envLevers(key, name, { enabled: e.enabled, rollout }, { reason: reason.value, out, onDone: () => reload() }));
        } },
      ], envs, { caption: `Environments of ${key}` }) : h("p", { class: "muted" }, "Off everywhere: no environment configured.")),
      section("Details", facts([
        ["Owner", f.owner || "—"],
        ["Temporary", f.temporary ? "yes (reported when stale)" : "no"],
        (f.tags || []).length ? ["Tags", f.tags.join(", ")] : null,
        (d.schedule || []).length ? ["Scheduled", d.schedule.map((s) => `${s.env} → ${s.percentage}% at ${dateTime(s.at)}`).join("; ")] : null,
      ])),
      section("Audit history", historyList(d.history)));
  };
  reload = throttle(load, 400);
  load();
  return {
    el,
    onEvent: (e) => { if ((e.type === "flag_changed" && e.flag === key) || e.type === "__backlog") reload(); },
    dispose: () => { alive = false; },
  };
}
