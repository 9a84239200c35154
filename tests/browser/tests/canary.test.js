// A bad canary rolled back, watched live: the server starts its own router
// (on free ports), the sample service is released twice through the
// dashboard's own "Deploy" button, and while the second release takes
// traffic the environments page shows the split, then the judge's fail
// verdict and the rollback, without a reload.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { Server, makeRepo, commit, ADMIN, until, sampleServiceBin, sleep } from "../lib/server.js";
import { openBrowser, signIn, shot } from "../lib/browser.js";

const yaml = (bin) => `project: shop
trunk: main
pipeline:
  stages:
    - name: commit
      kind: unit
      jobs:
        - name: unit-tests
          run: echo "unit ok"
    - name: package
      jobs:
        - name: build
          run: mkdir -p app && cp release.env app/release.env
          artifacts: [app]
environments:
  production:
    target:
      process:
        command: cd app && . ./release.env && exec "$SAMPLE_BIN"
        instances: 1
        health: /healthz
        ready_timeout: 20s
        env:
          SAMPLE_BIN: "${bin}"
          WORKERS: "1"
    strategy:
      canary:
        steps:
          - { weight: 50, for: 60s }
    judge:
      compare_to_baseline: true
      alpha: 0.01
`;

let srv;
let repo;

before(async () => {
  const bin = sampleServiceBin();
  assert.ok(fs.existsSync(bin), `${bin} missing: cargo build -p sample-service`);
  srv = await new Server().start({ router: "external" });
  repo = path.join(srv.tmp, "shop");
  makeRepo(repo, { yaml: yaml(bin), message: "Ship v1" });
  commit(repo, "release.env", "export VERSION=v1 ERROR_RATE=0.01\n", "Release v1 of the service");
  const p = await srv.api("POST", "/api/v1/projects", { name: "shop", repo, poll: "0s" });
  const r1 = await srv.waitRun(p.run_id);
  assert.equal(r1.status, "passed", JSON.stringify(r1));
  const d1 = await srv.api("POST", "/api/v1/projects/shop/environments/production/deploys", { run: r1.id });
  await until("v1 released", async () => {
    const d = await srv.api("GET", `/api/v1/deploys/${d1.deploy_id}`);
    return d.phase && d.phase.finished ? d : null;
  }, { timeout: 60000 });
  commit(repo, "release.env", "export VERSION=v2 ERROR_RATE=0.3\n", "Use the new pricing engine", "Linus Torvalds");
  const r2 = await srv.api("POST", "/api/v1/projects/shop/runs", {});
  assert.equal((await srv.waitRun(r2.id)).status, "passed");
});

after(async () => {
  if (srv) await srv.stop();
});

/** GETs through the router until `stop()` says so, at most 90 s. */
function traffic(url) {
  let done = false;
  let sent = 0;
  const end = Date.now() + 90000;
  const worker = async () => {
    while (!done && Date.now() < end && sent < 200000) {
      sent += 1;
      try {
        const r = await fetch(`${url}/x`);
        await r.arrayBuffer();
      } catch {
        await sleep(20);
      }
    }
  };
  const all = Promise.all(Array.from({ length: 6 }, worker));
  return { stop: async () => { done = true; await all; return sent; } };
}

test("a bad canary's traffic, verdict and rollback appear live", async () => {
  const b = await openBrowser();
  let load = null;
  try {
    const { page } = b;
    await signIn(page, srv.url, ADMIN);
    await page.evaluate(() => { location.hash = "#/p/shop/envs"; window.__sameDocument = true; });
    const card = page.locator(".env-card[data-env=production]");
    await card.locator(".split-part").first().waitFor();
    // Release the newest passed run with the page's own button.
    await card.getByRole("button", { name: "Deploy to production" }).click();
    await card.locator(".alert.ok").waitFor();
    // No traffic yet, so the judge cannot decide: the release waits at its
    // first step, and the page must show it in flight with the split.
    await card.locator(".facts .pill.st-in_progress").waitFor({ timeout: 60000 });
    await until("the canary's split on the page", async () => (await card.locator(".split-part").count()) >= 2, { timeout: 60000 });
    await sleep(300);
    await shot(page, "canary-live");
    load = traffic(`http://127.0.0.1:${srv.routerPort}`);
    await card.locator(".pill.st-rolled_back").waitFor({ timeout: 80000 });
    const sent = await load.stop();
    load = null;
    await card.locator(".verdict.v-fail").first().waitFor({ timeout: 10000 });
    const verdict = await card.locator(".verdict.v-fail").first().innerText();
    assert.match(verdict, /canary/, verdict);
    assert.equal(await page.evaluate(() => window.__sameDocument), true, "no reload happened");
    await page.waitForTimeout(500);
    await shot(page, "canary-rolled-back");
    // The release's own page: chart and every verdict.
    await card.locator(".facts a[href^='#/deploys/']").first().click();
    await page.locator("svg.traffic").waitFor();
    await page.locator(".verdict.v-fail").first().waitFor();
    await shot(page, "deploy");
    await page.evaluate(() => { location.hash = "#/p/shop/stream"; });
    await page.locator("table.vs .chip.st-rolled_back").waitFor();
    await shot(page, "value-stream-deploys");
    // The rollback opened an incident; it is listed and can be resolved.
    const spec = await srv.spec();
    if (spec.paths["/api/v1/projects/{project}/incidents"]) {
      await page.evaluate(() => { location.hash = "#/p/shop/incidents"; });
      await page.locator("table.grid .pill.st-failed").first().waitFor();
      await shot(page, "incidents-open");
      if (spec.paths["/api/v1/incidents/{id}/resolve"]) {
        await page.getByRole("button", { name: /^Resolve incident/ }).first().click();
        await page.locator("table.grid .pill.st-passed").first().waitFor();
      }
    }
    assert.deepEqual(b.errors, [], b.errors.join("\n"));
    assert.ok(sent > 0);
  } finally {
    if (load) await load.stop();
    await b.close();
  }
});
