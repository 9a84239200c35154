// The dashboard in headless Chromium against a real `andon server`:
// every page loads without console errors, a running pipeline changes on
// screen without a reload, flags are edited with a reason and their audit
// history shows it, board cards are dragged and moved by keyboard, the
// keyboard reaches every button with a visible focus ring, a viewer's
// release and flag buttons are refused with the server's 403 sentence, and
// a screenshot of each page lands in target/ci-artifacts/screenshots/.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { Server, makeRepo, PIPELINE, ENVS, ADMIN, until } from "../lib/server.js";
import { openBrowser, signIn, shot } from "../lib/browser.js";

const FAILING = `project: payments
trunk: main
pipeline:
  stages:
    - name: commit
      kind: unit
      jobs:
        - name: unit-tests
          run: |
            echo "running 12 tests"
            echo "test totals::sum ... FAILED"
            echo "error: assertion failed: total == 42"
            exit 1
        - name: lint
          run: echo "lint clean"
    - name: package
      jobs:
        - name: build
          run: echo never
`;

const BOARD = `board:
  columns:
    - todo
    - { name: doing, wip: 1 }
    - review
    - done
`;

let srv;
let viewer;

before(async () => {
  srv = await new Server().start();
  viewer = await srv.token("ops-viewer", "viewer");
  const shop = await srv.api("POST", "/api/v1/projects", {
    name: "shop", repo: makeRepo(path.join(srv.tmp, "shop"), { yaml: PIPELINE + ENVS + BOARD }), poll: "0s",
  });
  const payments = await srv.api("POST", "/api/v1/projects", {
    name: "payments",
    repo: makeRepo(path.join(srv.tmp, "payments"), { yaml: FAILING, message: "Switch the payment provider to Acme", who: "Grace Hopper" }),
    poll: "0s",
  });
  assert.ok(shop.run_id, "adding a project with a trunk queues its first run");
  const [a, b] = await Promise.all([srv.waitRun(shop.run_id), srv.waitRun(payments.run_id)]);
  assert.equal(a.status, "passed", JSON.stringify(a));
  assert.equal(b.status, "failed", JSON.stringify(b));
  await srv.api("PUT", "/api/v1/flags/new-checkout", {
    reason: "browser test",
    flag: {
      description: "The one-page checkout", owner: "team-shop", temporary: true,
      environments: {
        production: { enabled: true, rules: [{ conditions: [{ attribute: "country", operator: "in", values: ["no"] }], serve: "on" }] },
        staging: { enabled: true },
      },
    },
  });
  await srv.api("PUT", "/api/v1/flags/search-v2", {
    reason: "browser test",
    flag: { description: "New search ranking", owner: "team-search", environments: { staging: { enabled: true }, production: { enabled: false } } },
  });
  for (const title of ["One-page checkout", "Search ranking v2", "Fix flaky payment test"]) {
    await srv.api("POST", "/api/v1/projects/shop/cards", { title });
  }
});

after(async () => {
  if (srv) await srv.stop();
});

test("the page and its files carry a strict CSP, content types and ETags", async () => {
  const index = await fetch(`${srv.url}/`);
  assert.equal(index.status, 200);
  assert.match(index.headers.get("content-type"), /^text\/html/);
  const csp = index.headers.get("content-security-policy");
  assert.match(csp, /script-src 'self'/);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
  const js = await fetch(`${srv.url}/assets/js/main.js`);
  assert.match(js.headers.get("content-type"), /^text\/javascript/);
  const etag = js.headers.get("etag");
  assert.ok(etag);
  const again = await fetch(`${srv.url}/assets/js/main.js`, { headers: { "If-None-Match": etag } });
  assert.equal(again.status, 304);
  const api404 = await fetch(`${srv.url}/no/such/thing`);
  assert.equal(api404.status, 404, "the API's fallback still answers unknown paths");
});

test("every page loads without console errors, and is screenshotted", async () => {
  const b = await openBrowser();
  try {
    const { page } = b;
    await signIn(page, srv.url, ADMIN);
    await page.locator('[data-project="shop"][data-light="green"]').waitFor();
    await page.locator('[data-project="payments"][data-light="red"]').waitFor();
    await page.getByText("Grace Hopper", { exact: false }).first().waitFor();
    assert.match(await page.locator('[data-project="payments"]').innerText(), /Grace Hopper is fixing/);
    assert.match(await page.locator('[data-project="payments"]').innerText(), /Switch the payment provider/);
    await page.locator("#live[data-state=live]").waitFor();
    await shot(page, "projects");

    const visit = async (hash, ready, name) => {
      await page.evaluate((h) => { location.hash = h; }, hash);
      await page.locator(ready).first().waitFor({ timeout: 20000 });
      await page.waitForTimeout(400);
      await shot(page, name);
    };
    await visit("#/p/shop/stream", "table.vs .chip.st-passed", "value-stream");
    await visit("#/p/shop/runs", "table.grid a[href='#/runs/1']", "runs");
    await visit("#/runs/1", ".node[data-status=passed]", "run");
    assert.equal(await page.locator(".node").count(), 5);
    await page.locator(".log .ln").first().waitFor();
    await visit("#/runs/2", ".node[data-status=failed]", "run-failed");
    await page.getByText("assertion failed", { exact: false }).first().waitFor();
    await visit("#/p/shop/envs", ".env-card[data-env=production]", "environments");
    await visit("#/flags", "td a.mono", "flags");
    await visit("#/flags/new-checkout", ".history-item", "flag");
    await visit("#/p/shop/metrics", ".trend", "metrics");
    assert.equal(await page.locator(".trend").count(), 4, "a chart per DORA key");
    await visit("#/p/shop/board", ".board-card", "board");
    await visit("#/p/shop/incidents", "table.grid, .empty", "incidents");

    // Dark mode through the toggle (system → light → dark).
    await page.evaluate(() => { location.hash = "#/"; });
    await page.locator('[data-project="shop"]').waitFor();
    for (let i = 0; i < 3 && (await page.evaluate(() => document.documentElement.dataset.theme)) !== "dark"; i++) {
      await page.locator("#theme").click();
    }
    const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    assert.equal(bg, "rgb(13, 17, 23)", "dark theme applied");
    await page.waitForTimeout(300);
    await shot(page, "projects-dark");
    await visit("#/runs/2", ".node[data-status=failed]", "run-dark");
    await page.locator("#theme").click(); // back to system for the next tests' profile (fresh anyway)

    assert.deepEqual(b.errors, [], b.errors.join("\n"));
  } finally {
    await b.close();
  }
});

test("a running pipeline changes on the page without a reload", async () => {
  const b = await openBrowser();
  try {
    const { page } = b;
    await signIn(page, srv.url, ADMIN);
    await page.locator('[data-project="shop"][data-light="green"]').waitFor();
    await page.evaluate(() => { window.__sameDocument = true; });
    const run = await srv.api("POST", "/api/v1/projects/shop/runs", {});
    // The projects page sees the run start...
    await page.locator('[data-project="shop"] .andon.busy').waitFor({ timeout: 15000 });
    // ...and the run page follows it to the end, from events alone.
    await page.locator(`[data-project="shop"] a[href="#/runs/${run.id}"]`).first().click();
    const unit = page.locator('.node[data-job="unit-tests"]');
    await until("unit-tests running on the page", async () => (await unit.getAttribute("data-status")) === "running", { timeout: 15000 });
    await shot(page, "run-live");
    await until("unit-tests passed on the page", async () => (await unit.getAttribute("data-status")) === "passed", { timeout: 30000 });
    await page.locator("h1 .pill.st-passed").waitFor({ timeout: 30000 });
    assert.equal(await page.evaluate(() => window.__sameDocument), true, "no reload happened");

    // Keyboard: a job of the graph is a link; Enter opens its log.
    await page.locator('.node[data-job="build"]').focus();
    await page.keyboard.press("Enter");
    await page.locator(".log-head h3", { hasText: "build" }).waitFor();
    assert.match(page.url(), new RegExp(`#/runs/${run.id}/build$`));
    assert.deepEqual(b.errors, [], b.errors.join("\n"));
  } finally {
    await b.close();
  }
});

test("a viewer's promote and rollback are refused with the server's 403 message", async () => {
  const b = await openBrowser();
  try {
    const { page } = b;
    await signIn(page, srv.url, viewer);
    await page.evaluate(() => { location.hash = "#/p/shop/envs"; });
    const card = page.locator(".env-card[data-env=production]");
    await card.waitFor();
    await card.getByRole("button", { name: "Promote" }).click();
    const msg = card.locator(".alert.error");
    await msg.waitFor();
    assert.match(await msg.innerText(), /Promote refused \(403\)/);
    assert.match(await msg.innerText(), /deployer role/);
    const rollback = card.getByRole("button", { name: "Rollback" });
    await rollback.click();
    await card.getByRole("button", { name: "Confirm rollback" }).click();
    await until("rollback refusal", async () => /Rollback refused \(403\)/.test(await msg.innerText()));
    await shot(page, "viewer-refused");
    // A viewer may read flags but not change them.
    await page.evaluate(() => { location.hash = "#/flags"; });
    await page.locator("#flag-reason").fill("viewer tries");
    await page.getByRole("button", { name: "Turn search-v2 on in production" }).click();
    const flagMsg = page.locator("main .action-out .alert.error");
    await flagMsg.waitFor();
    assert.match(await flagMsg.innerText(), /refused \(403\)/);
    // The browser logs each refused call; nothing else may be logged.
    const other = b.errors.filter((e) => !/status of 403/.test(e));
    assert.deepEqual(other, [], other.join("\n"));
    assert.equal(b.errors.length, 3, b.errors.join("\n"));
  } finally {
    await b.close();
  }
});

test("flags: on/off, rollout and kill switch need a reason, and the audit history shows it", async () => {
  const b = await openBrowser();
  try {
    const { page } = b;
    await signIn(page, srv.url, ADMIN);
    await page.evaluate(() => { location.hash = "#/flags"; });
    const turnOn = page.getByRole("button", { name: "Turn search-v2 on in production" });
    await turnOn.waitFor();
    // No reason: the server refuses, and says why.
    await turnOn.click();
    const out = page.locator("main .action-out").first();
    await out.locator(".alert.error").waitFor();
    assert.match(await out.innerText(), /refused \(400\).*reason/);
    // With a reason: the flag turns on in production, live.
    await page.locator("#flag-reason").fill("search v2 is ready for everyone");
    await turnOn.click();
    await page.getByRole("button", { name: "Turn search-v2 off in production" }).waitFor();
    // The rollout lever.
    const pct = page.getByLabel("Rollout of new-checkout in staging, percent");
    await pct.fill("40");
    await page.getByRole("button", { name: "Set the rollout of new-checkout in staging" }).click();
    await until("rollout shown", async () => /40%/.test(await page.locator("table.grid").innerText()));
    const flag = await srv.api("GET", "/api/v1/flags/search-v2");
    assert.equal(flag.flag.environments.production.enabled, true);
    assert.equal(flag.history[flag.history.length - 1].reason, "search v2 is ready for everyone");

    // The flag's page: its audit history, newest first, and the kill switch.
    await page.locator("a.mono", { hasText: "search-v2" }).click();
    const first = page.locator(".history-item").first();
    await first.waitFor();
    assert.match(await first.innerText(), /search v2 is ready for everyone/);
    assert.ok((await first.locator("strong").innerText()).trim(), "the actor is named");
    await page.locator("#flag-reason").fill("errors spiking on search");
    const kill = page.getByRole("button", { name: "Kill search-v2 in every environment" });
    await kill.click();
    await page.getByRole("button", { name: "Confirm: off everywhere" }).click();
    await until("killed everywhere", async () => {
      const f = await srv.api("GET", "/api/v1/flags/search-v2");
      return Object.values(f.flag.environments).every((e) => !e.enabled);
    }, { timeout: 10000 });
    await until("kill in the history", async () => /errors spiking on search/.test(await page.locator(".history-item").first().innerText()), { timeout: 10000 });
    assert.equal(await page.locator("table.grid .pill.st-passed").count(), 0, "no environment shows on");
    await shot(page, "flag-history");
    assert.deepEqual(b.errors.filter((e) => !/status of 400/.test(e)), [], b.errors.join("\n"));
  } finally {
    await b.close();
  }
});

test("the board: cards are dragged between columns, moved by keyboard, and WIP limits refuse", async () => {
  const b = await openBrowser();
  try {
    const { page } = b;
    await signIn(page, srv.url, ADMIN);
    await page.evaluate(() => { location.hash = "#/p/shop/board"; });
    const col = (name) => page.locator(`.board-col[data-column="${name}"]`);
    const card = (id) => page.locator(`.board-card[data-card="${id}"]`);
    await card(1).waitFor();
    // Drag #1 from todo to doing.
    await card(1).dragTo(col("doing"));
    await col("doing").locator('.board-card[data-card="1"]').waitFor({ timeout: 10000 });
    // doing has a WIP limit of 1: dragging #2 there is refused with the server's sentence.
    await card(2).dragTo(col("doing"));
    const msg = page.locator("main .action-out .alert.error");
    await msg.waitFor();
    assert.match(await msg.innerText(), /refused \(409\)/);
    assert.equal(await col("todo").locator('.board-card[data-card="2"]').count(), 1);
    // Keyboard: focus #1 and press → : it moves to review and keeps the focus.
    await card(1).focus();
    await page.keyboard.press("ArrowRight");
    await col("review").locator('.board-card[data-card="1"]').waitFor({ timeout: 10000 });
    await until("focus kept on the moved card", async () => page.evaluate(() => document.activeElement && document.activeElement.dataset.card === "1"), { timeout: 5000 });
    // And the buttons: #2 → doing (free again).
    await page.getByRole("button", { name: "Move card #2 to doing" }).click();
    await col("doing").locator('.board-card[data-card="2"]').waitFor({ timeout: 10000 });
    await shot(page, "board");
    assert.deepEqual(b.errors.filter((e) => !/status of 409/.test(e)), [], b.errors.join("\n"));
  } finally {
    await b.close();
  }
});

test("keyboard: skip link first, then every control in order with a visible focus ring", async () => {
  const b = await openBrowser({ colorScheme: "dark" });
  try {
    const { page } = b;
    await signIn(page, srv.url, ADMIN);
    await page.evaluate(() => { location.hash = "#/p/shop/envs"; });
    await page.locator('.env-card[data-env=production] button:has-text("Promote")').waitFor();
    await page.reload();
    await page.locator('.env-card[data-env=production] button:has-text("Promote")').waitFor();
    await page.keyboard.press("Tab");
    assert.equal(await page.evaluate(() => document.activeElement.id), "skip", "the skip link comes first");
    await page.keyboard.press("Enter");
    assert.equal(await page.evaluate(() => document.activeElement.id), "main", "skip moves focus to the content");
    const seen = [];
    for (let i = 0; i < 80; i++) {
      await page.keyboard.press("Tab");
      const info = await page.evaluate(() => {
        const el = document.activeElement;
        if (!el || el === document.body) return null;
        const cs = getComputedStyle(el);
        const prev = window.__lastFocus;
        const inOrder = !prev || !!(prev.compareDocumentPosition(el) & Node.DOCUMENT_POSITION_FOLLOWING);
        window.__lastFocus = el;
        return {
          text: (el.getAttribute("aria-label") || el.textContent || el.tagName).trim().slice(0, 40),
          tag: el.tagName, inMain: !!el.closest("main"),
          ring: cs.outlineStyle !== "none" && parseFloat(cs.outlineWidth) > 0,
          inOrder,
        };
      });
      if (!info || !info.inMain) break;
      seen.push(info);
    }
    const texts = seen.map((x) => x.text);
    for (const want of ["Promote", "Pause", "Resume", "Abort", "Rollback", "Deploy to production"]) {
      assert.ok(texts.includes(want), `${want} reachable by Tab (got ${texts.join(" | ")})`);
    }
    const noRing = seen.filter((x) => !x.ring);
    assert.deepEqual(noRing, [], "every focused control shows a focus ring");
    const outOfOrder = seen.filter((x) => !x.inOrder);
    assert.deepEqual(outOfOrder, [], "focus follows the reading order");
    await page.locator('.env-card[data-env=production] button:has-text("Promote")').focus();
    await shot(page, "keyboard-focus-dark");
    assert.deepEqual(b.errors, [], b.errors.join("\n"));
  } finally {
    await b.close();
  }
});
