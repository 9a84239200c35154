// Releases steered from the page and watched live: the server starts its
// own router (on free ports), the sample service is released through the
// dashboard's own "Deploy" button; a good canary is promoted with the
// Promote button; a bad one takes traffic and the environments page shows
// the split, the judge's fail verdict and the rollback without a reload;
// the incident it opened gets a blameless postmortem, written, reloaded
// and edited; and the Rollback button returns production to the release
// before.

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
  commit(repo, "release.env", "export VERSION=v2 ERROR_RATE=0\n", "Faster checkout", "Ada Lovelace");
  const r2 = await srv.api("POST", "/api/v1/projects/shop/runs", {});
  assert.equal((await srv.waitRun(r2.id)).status, "passed");
});

async function newestDeploy(after) {
  return until("a new release", async () => {
    const list = await srv.api("GET", "/api/v1/projects/shop/deploys");
    const d = list.find((x) => x.id > after);
    return d || null;
  }, { timeout: 20000 });
}

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

test("promote, a live rollback, its postmortem, and the Rollback button", async () => {
  const b = await openBrowser();
  let load = null;
  try {
    const { page } = b;
    await signIn(page, srv.url, ADMIN);
    await page.evaluate(() => { location.hash = "#/p/shop/envs"; window.__sameDocument = true; });
    const card = page.locator(".env-card[data-env=production]");
    const release = (id) => card.locator(".facts dd", { has: page.locator(`a[href="#/deploys/${id}"]`) });
    await card.locator(".split-part").first().waitFor();

    // 1. A good change: released with the page's button, held at its first
    // step (no traffic, so no verdict yet), promoted with the page's button.
    await card.getByRole("button", { name: "Deploy to production" }).click();
    await card.locator(".alert.ok").waitFor();
    const good = await newestDeploy(1);
    await release(good.id).locator(".pill.st-in_progress").waitFor({ timeout: 60000 });
    await until("the canary's split on the page", async () => (await card.locator(".split-part").count()) >= 2, { timeout: 60000 });
    await sleep(300);
    await shot(page, "canary-live");
    await card.getByRole("button", { name: "Promote" }).click();
    await release(good.id).locator(".pill.st-succeeded").waitFor({ timeout: 30000 });
    assert.equal((await srv.api("GET", `/api/v1/deploys/${good.id}`)).phase.finished, "succeeded");

    // 2. A bad change: built, then offered by the page without a reload.
    commit(repo, "release.env", "export VERSION=v3 ERROR_RATE=0.3\n", "Use the new pricing engine", "Linus Torvalds");
    const r3 = await srv.api("POST", "/api/v1/projects/shop/runs", {});
    assert.equal((await srv.waitRun(r3.id)).status, "passed");
    await card.locator(`select option[value="${r3.id}"]`).waitFor({ state: "attached", timeout: 20000 });
    await card.locator("select").selectOption(String(r3.id));
    await card.getByRole("button", { name: "Deploy to production" }).click();
    const bad = await newestDeploy(good.id);
    await release(bad.id).locator(".pill.st-in_progress").waitFor({ timeout: 60000 });
    load = traffic(`http://127.0.0.1:${srv.routerPort}`);
    await release(bad.id).locator(".pill.st-rolled_back").waitFor({ timeout: 80000 });
    const sent = await load.stop();
    load = null;
    assert.ok(sent > 0);
    await card.locator(".verdict.v-fail").first().waitFor({ timeout: 10000 });
    const verdict = await card.locator(".verdict.v-fail").first().innerText();
    assert.match(verdict, /canary/, verdict);
    assert.equal(await page.evaluate(() => window.__sameDocument), true, "no reload happened");
    await page.waitForTimeout(500);
    await shot(page, "canary-rolled-back");

    // The release's own page: chart and every verdict.
    await release(bad.id).locator("a").click();
    await page.locator("svg.traffic").waitFor();
    await page.locator(".verdict.v-fail").first().waitFor();
    await shot(page, "deploy");
    await page.evaluate(() => { location.hash = "#/p/shop/stream"; });
    await page.locator("table.vs .chip.st-rolled_back").waitFor();
    await shot(page, "value-stream-deploys");

    // 3. The rollback opened an incident: write its postmortem.
    await page.evaluate(() => { location.hash = "#/p/shop/incidents"; });
    await page.locator("table.grid .pill.st-failed").first().waitFor();
    await shot(page, "incidents-open");
    await page.locator("table.grid td.wrap a").first().click();
    await page.locator("#pm-went-right").waitFor();
    assert.ok((await page.locator(".timeline .feed-item").count()) >= 2, "the timeline is filled from events");
    await page.locator("#pm-went-right").fill("The judge caught the error spike in seconds and rolled back.");
    await page.locator("#pm-went-wrong").fill("The pricing engine's error path was not covered by the acceptance stage.");
    await page.locator("#pm-actions").fill("- Add an acceptance test for pricing errors\nAlert on pricing error rate");
    await page.getByRole("button", { name: "Publish postmortem" }).click();
    await page.locator(".postmortem[data-written] .pm-items li").nth(1).waitFor();
    await page.reload();
    await page.locator(".postmortem .pm-wrong", { hasText: "acceptance stage" }).waitFor();
    await page.getByRole("button", { name: "Edit postmortem" }).click();
    assert.match(await page.locator("#pm-actions").inputValue(), /Add an acceptance test for pricing errors\nAlert on pricing error rate/);
    await page.locator("#pm-went-wrong").fill("The pricing engine's error path had no test; the canary found it, users did not.");
    await page.getByRole("button", { name: "Save postmortem" }).click();
    await page.locator(".postmortem .pm-wrong", { hasText: "users did not" }).waitFor();
    const incidentId = Number(page.url().split("/").pop());
    const inc = await srv.api("GET", `/api/v1/incidents/${incidentId}`);
    assert.match(inc.postmortem.went_wrong, /users did not/);
    assert.deepEqual(inc.postmortem.action_items, ["Add an acceptance test for pricing errors", "Alert on pricing error rate"]);
    await shot(page, "postmortem");
    await page.getByRole("button", { name: /^Resolve incident/ }).click();
    await page.locator("h1 .pill.st-passed").waitFor();

    // 4. Roll production back by hand to the release before (v1).
    await page.evaluate(() => { location.hash = "#/p/shop/envs"; });
    await card.getByRole("button", { name: "Rollback" }).click();
    await card.getByRole("button", { name: "Confirm rollback" }).click();
    await card.locator(".alert.ok", { hasText: "Rollback: accepted" }).waitFor({ timeout: 60000 });
    const v1 = (await srv.api("GET", "/api/v1/deploys/1")).version;
    await until("production back on v1", async () => {
      const envs = await srv.api("GET", "/api/v1/projects/shop/environments");
      return envs.find((e) => e.name === "production").stable === v1;
    }, { timeout: 30000 });
    assert.deepEqual(b.errors, [], b.errors.join("\n"));
  } finally {
    if (load) await load.stop();
    await b.close();
  }
});
