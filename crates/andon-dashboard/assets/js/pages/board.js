// The work board: columns left to right with their WIP limits and cards.
// Shown only when the server documents GET /api/v1/projects/{project}/board.

import { h, fill } from "../dom.js";
import { get, seg } from "../api.js";
import { pageHeader, errorBox, throttle, empty } from "../ui.js";

function columnsOf(board) {
  if (!board) return [];
  const cols = Array.isArray(board) ? board : board.columns || [];
  const cards = Array.isArray(board.cards) ? board.cards : [];
  return cols.map((c) => {
    const name = typeof c === "string" ? c : c.name;
    const wip = typeof c === "object" ? c.wip ?? c.wip_limit ?? null : null;
    const own = typeof c === "object" && Array.isArray(c.cards) ? c.cards : cards.filter((k) => k.column === name);
    return { name, wip, cards: own };
  });
}

export function boardPage(ctx, route) {
  const p = route.project;
  const body = h("div", null, h("p", { class: "muted" }, "Loading…"));
  const el = h("div", { class: "page" }, pageHeader(`Board of ${p}`, "Cards move when commits naming them flow through the pipeline."), body);
  let alive = true;
  const load = async () => {
    let board;
    try {
      board = await get(`/api/v1/projects/${seg(p)}/board`);
    } catch (err) {
      if (alive) fill(body, errorBox(err));
      return;
    }
    if (!alive) return;
    const cols = columnsOf(board);
    if (!cols.length) {
      fill(body, empty("This project's andon.yaml has no board."));
      return;
    }
    fill(body, h("div", { class: "board" }, cols.map((c) => {
      const over = c.wip !== null && c.wip !== undefined && c.cards.length > c.wip;
      return h("section", { class: ["board-col", over ? "over" : ""], "aria-label": `${c.name}: ${c.cards.length} cards` },
        h("h2", { class: "panel-title" }, c.name, h("span", { class: ["tag", over ? "warn" : ""] }, c.wip !== null && c.wip !== undefined ? `${c.cards.length}/${c.wip}` : String(c.cards.length))),
        c.cards.length
          ? h("ul", { class: "cards" }, c.cards.map((k) => h("li", { class: "board-card" },
            h("span", { class: "muted small mono" }, `#${k.id ?? k.card_id ?? ""}`), " ", k.title || "")))
          : h("p", { class: "muted small" }, "empty"));
    })));
  };
  const reload = throttle(load, 500);
  load();
  return {
    el,
    onEvent: (e) => { if (e.type.startsWith("card_")) reload(); },
    dispose: () => { alive = false; },
  };
}
