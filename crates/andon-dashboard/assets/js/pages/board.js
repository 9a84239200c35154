// The work board: columns left to right with their WIP limits, cards, and
// the lead and cycle times the board measures. Cards are added and moved
// through the API — dragged with a mouse, or with the keyboard: a focused
// card moves with ← and →, and each card also has two move buttons. A move
// past a full column is refused by the server and its sentence shown.
// Shown only when the server documents GET /api/v1/projects/{project}/board.

import { h, fill } from "../dom.js";
import { get, post, seg, has, ApiError } from "../api.js";
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
  /** The card to focus again after the board is redrawn (keyboard moves). */
  let refocus = null;

  /** Moves a card (drag, arrow key) and reports like the buttons do. */
  const move = async (id, to) => {
    out.replaceChildren();
    try {
      await post(`/api/v1/projects/${seg(p)}/cards/${id}/move`, { to });
      out.replaceChildren(h("div", { class: "alert ok" }, `Card #${id} moved to ${to}`));
    } catch (err) {
      const msg = err instanceof ApiError ? `Move refused (${err.status || "not sent"}): ${err.message}` : `Move failed: ${err.message || err}`;
      out.replaceChildren(h("div", { class: "alert error", dataset: { status: String(err.status || "") } }, msg));
    }
    reload();
  };

  const cardItem = (k, ci, cols) => {
    const li = h("li", {
      class: "board-card", dataset: { card: String(k.id) }, tabindex: canMove ? "0" : null,
      draggable: canMove ? "true" : null,
      "aria-label": `Card #${k.id}: ${k.title || ""}, in ${cols[ci].name}`,
      "aria-describedby": canMove ? "board-help" : null,
    },
    h("div", null, h("span", { class: "muted small mono" }, `#${k.id}`), " ", k.title || ""),
    h("div", { class: "card-foot" },
      h("span", { class: "small muted" }, k.lead_time_s ? `lead time ${duration(k.lead_time_s * 1000)}` : k.created_at_ms ? `added ${ago(k.created_at_ms)}` : ""),
      canMove ? h("span", { class: "card-moves" },
        ci > 0 ? mover(k, cols[ci - 1].name, "←") : null,
        ci + 1 < cols.length ? mover(k, cols[ci + 1].name, "→") : null) : null));
    if (!canMove) return li;
    li.addEventListener("dragstart", (ev) => {
      ev.dataTransfer.setData("text/x-andon-card", String(k.id));
      ev.dataTransfer.setData("text/plain", `#${k.id}`);
      ev.dataTransfer.effectAllowed = "move";
      li.classList.add("dragging");
    });
    li.addEventListener("dragend", () => li.classList.remove("dragging"));
    li.addEventListener("keydown", (ev) => {
      if (ev.target !== li || ev.altKey || ev.ctrlKey || ev.metaKey) return;
      const to = ev.key === "ArrowLeft" ? cols[ci - 1] : ev.key === "ArrowRight" ? cols[ci + 1] : null;
      if (!to) return;
      ev.preventDefault();
      refocus = k.id;
      move(k.id, to.name);
    });
    return li;
  };

  /** A column accepts dropped cards from the other columns. */
  const dropTarget = (col, name) => {
    if (!canMove) return col;
    let depth = 0;
    col.addEventListener("dragenter", (ev) => {
      if (!ev.dataTransfer.types.includes("text/x-andon-card")) return;
      depth += 1;
      col.classList.add("drop-here");
    });
    col.addEventListener("dragleave", () => {
      depth = Math.max(0, depth - 1);
      if (!depth) col.classList.remove("drop-here");
    });
    col.addEventListener("dragover", (ev) => {
      if (!ev.dataTransfer.types.includes("text/x-andon-card")) return;
      ev.preventDefault();
      ev.dataTransfer.dropEffect = "move";
    });
    col.addEventListener("drop", (ev) => {
      depth = 0;
      col.classList.remove("drop-here");
      const id = Number(ev.dataTransfer.getData("text/x-andon-card"));
      if (!id) return;
      ev.preventDefault();
      const from = document.querySelector(`.board-card[data-card="${id}"]`);
      if (from && from.closest(".board-col") === col) return;
      move(id, name);
    });
    return col;
  };

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
      canMove ? h("p", { id: "board-help", class: "muted small" }, "Drag a card to another column, or focus it and press ← or →.") : null,
      h("div", { class: "board" }, cols.map((c, ci) => {
        const cards = c.cards || [];
        const hasWip = c.wip !== null && c.wip !== undefined;
        const full = hasWip && cards.length >= c.wip;
        return dropTarget(h("section", { class: ["board-col", full ? "full" : ""], "aria-label": `${c.name}: ${cards.length} cards${hasWip ? `, limit ${c.wip}` : ""}`, dataset: { column: c.name } },
          h("h2", { class: "panel-title" }, c.name,
            h("span", { class: ["tag", full ? "warn" : ""], title: hasWip ? "cards / WIP limit" : "cards" }, hasWip ? `${cards.length}/${c.wip}` : String(cards.length))),
          cards.length
            ? h("ul", { class: "cards" }, cards.map((k) => cardItem(k, ci, cols)))
            : h("p", { class: "muted small" }, "empty")), c.name);
      })));
  };
  reload = throttle(async () => {
    await load();
    if (refocus !== null) {
      const again = body.querySelector(`.board-card[data-card="${refocus}"]`);
      refocus = null;
      if (again) again.focus();
    }
  }, 300);
  load();
  return {
    el,
    onEvent: (e) => { if (e.type.startsWith("card_") || e.type === "__backlog") reload(); },
    dispose: () => { alive = false; },
  };
}
