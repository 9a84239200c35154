// The work board: columns left to right with their WIP limits, cards, and
// the lead and cycle times the board measures. Cards are added and moved
// through the API; a move past a full column is refused by the server and
// its sentence shown. Shown only when the server documents
// GET /api/v1/projects/{project}/board.

import { h, fill } from "../dom.js";
import { get, seg, has } from "../api.js";
import { pageHeader, errorBox, throttle, empty, actionButton, facts } from "../ui.js";
import { duration, ago } from "../format.js";

export function boardPage(ctx, route) {
  const p = route.project;
  const body = h("div", { class: "stack" }, h("p", { class: "muted" }, "Loading…"));
  const out = h("div", { role: "alert", class: "action-out" });
  const canMove = has("POST", "/api/v1/projects/{project}/cards/{id}/move");
  const canAdd = has("POST", "/api/v1/projects/{project}/cards");
  let reload = () => {};
  const title = h("input", { id: "card-title", type: "text", placeholder: "What needs doing", size: 36, maxlength: 500 });
  const addForm = canAdd
    ? h("div", { class: "inline-form" }, h("label", { for: "card-title", class: "small" }, "New card"), title,
      actionButton({
        text: "Add card", kind: "primary", out, path: `/api/v1/projects/${seg(p)}/cards`,
        body: () => ({ title: title.value }), onDone: () => { title.value = ""; reload(); },
      }))
    : null;
  const el = h("div", { class: "page" },
    pageHeader(`Board of ${p}`, "Cards move when commits naming them (#12) flow through the pipeline, or by hand."),
    addForm, out, body);
  let alive = true;

  const mover = (card, to, text) => actionButton({
    text, label: `Move card #${card.id} to ${to}`, kind: "small ghost", out, onDone: () => reload(),
    path: `/api/v1/projects/${seg(p)}/cards/${card.id}/move`, body: { to },
  });

  const load = async () => {
    let board;
    try {
      board = await get(`/api/v1/projects/${seg(p)}/board`);
    } catch (err) {
      if (alive) fill(body, errorBox(err));
      return;
    }
    if (!alive) return;
    const cols = (board && board.columns) || [];
    if (!cols.length) {
      fill(body, empty("This project's andon.yaml has no board."));
      return;
    }
    fill(body,
      facts([
        ["Lead time (median)", board.lead_time_median_s !== null && board.lead_time_median_s !== undefined ? duration(board.lead_time_median_s * 1000) : "no data yet"],
        ["Cycle time (median)", board.cycle_time_median_s !== null && board.cycle_time_median_s !== undefined ? duration(board.cycle_time_median_s * 1000) : "no data yet"],
      ]),
      h("div", { class: "board" }, cols.map((c, ci) => {
        const cards = c.cards || [];
        const hasWip = c.wip !== null && c.wip !== undefined;
        const full = hasWip && cards.length >= c.wip;
        return h("section", { class: ["board-col", full ? "full" : ""], "aria-label": `${c.name}: ${cards.length} cards${hasWip ? `, limit ${c.wip}` : ""}`, dataset: { column: c.name } },
          h("h2", { class: "panel-title" }, c.name,
            h("span", { class: ["tag", full ? "warn" : ""], title: hasWip ? "cards / WIP limit" : "cards" }, hasWip ? `${cards.length}/${c.wip}` : String(cards.length))),
          cards.length
            ? h("ul", { class: "cards" }, cards.map((k) => h("li", { class: "board-card", dataset: { card: String(k.id) } },
              h("div", null, h("span", { class: "muted small mono" }, `#${k.id}`), " ", k.title || ""),
              h("div", { class: "card-foot" },
                h("span", { class: "small muted" }, k.created_at_ms ? `added ${ago(k.created_at_ms)}` : ""),
                canMove ? h("span", { class: "card-moves" },
                  ci > 0 ? mover(k, cols[ci - 1].name, "←") : null,
                  ci + 1 < cols.length ? mover(k, cols[ci + 1].name, "→") : null) : null))))
            : h("p", { class: "muted small" }, "empty"));
      })));
  };
  reload = throttle(load, 500);
  load();
  return {
    el,
    onEvent: (e) => { if (e.type.startsWith("card_") || e.type === "__backlog") reload(); },
    dispose: () => { alive = false; },
  };
}
