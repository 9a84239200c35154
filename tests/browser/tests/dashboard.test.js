// The dashboard in headless Chromium against a real `andon server`:
// every page loads without console errors, a running pipeline changes on
// screen without a reload, the keyboard reaches the graph, a viewer's
// release buttons are refused with the server's 403 sentence, and a
// screenshot of each page lands in target/screenshots/.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { Server, makeRepo, PIPELINE, ADMIN, until } from "../lib/server.js";
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

let srv;
let viewer;
let spec;

before(async () => {
  srv = await new Server().start();
  viewer = await srv.token("ops-viewer", "viewer");
  const shop = await srv.api("POST", "/api/v1/projects", {
    name: "shop", repo: makeRepo(path.join(srv.tmp, "shop")), poll: "0s",
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
  spec = await srv.spec();
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
    const paths = Object.keys(spec.paths);
    if (paths.includes("/api/v1/flags/{key}") && spec.paths["/api/v1/flags/{key}"].put) {
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
      await visit("#/flags", "td .mono", "flags");
      // A lever, with a reason, changes the row live.
      if (spec.paths["/api/v1/flags/{key}/rollout"]) {
        await page.locator("#flag-reason").fill("ramp up in staging");
        const input = page.getByLabel("Rollout of new-checkout in staging, percent");
        await input.fill("40");
        await input.locator("xpath=following-sibling::button[1]").click();
        await page.getByText("40%", { exact: false }).first().waitFor();
        await shot(page, "flags");
      }
    } else if (paths.includes("/api/v1/flags")) {
      await visit("#/flags", "main h1", "flags");
    }
    if (paths.includes("/api/v1/projects/{project}/metrics")) await visit("#/p/shop/metrics", ".tile, .alert", "metrics");
    if (paths.includes("/api/v1/projects/{project}/board")) {
      if (paths.includes("/api/v1/projects/{project}/cards")) {
        for (const title of ["One-page checkout", "Search ranking v2", "Fix flaky payment test"]) {
          await srv.api("POST", "/api/v1/projects/shop/cards", { title });
        }
      }
      await visit("#/p/shop/board", ".board, .empty", "board");
      if (paths.includes("/api/v1/projects/{project}/cards/{id}/move")) {
        const first = page.locator(".board-col").first();
        const to = await page.locator(".board-col").nth(1).getAttribute("data-column");
        await page.getByRole("button", { name: `Move card #1 to ${to}` }).click();
        await page.locator(`.board-col[data-column="${to}"] .board-card[data-card="1"]`).waitFor();
        assert.equal(await first.locator('.board-card[data-card="1"]').count(), 0);
        await shot(page, "board");
      }
    }
    if (paths.includes("/api/v1/projects/{project}/incidents")) await visit("#/p/shop/incidents", "table.grid, .empty", "incidents");

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
    // The browser logs each refused call; nothing else may be logged.
    const other = b.errors.filter((e) => !/status of 403/.test(e));
    assert.deepEqual(other, [], other.join("\n"));
    assert.equal(b.errors.length, 2, b.errors.join("\n"));
  } finally {
    await b.close();
  }
});
