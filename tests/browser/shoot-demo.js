// Screenshots of a running `andon demo --keep` for the docs:
//
//   node tests/browser/shoot-demo.js http://127.0.0.1:7170 andon_demo_admin_token [OUT_DIR]
//
// Writes envs.png (copied to docs/dashboard.png by hand when the look
// changed), projects.png, stream.png, metrics.png and incident.png to
// OUT_DIR (default target/ci-artifacts/demo/), and fails on a console error.

import fs from "node:fs";
import path from "node:path";
import { openBrowser, signIn, ARTIFACTS } from "./lib/browser.js";

const [url, token, outArg] = process.argv.slice(2);
if (!url || !token) {
  console.error("usage: node tests/browser/shoot-demo.js URL TOKEN [OUT_DIR]");
  process.exit(2);
}
const out = outArg || path.join(ARTIFACTS, "demo");
fs.mkdirSync(out, { recursive: true });
const b = await openBrowser({ width: 1440, height: 1000 });
try {
  const { page } = b;
  await signIn(page, url, token);
  const go = async (hash, ready, name) => {
    await page.evaluate((h) => { location.hash = h; }, hash);
    await page.locator(ready).first().waitFor({ timeout: 20000 });
    await page.waitForTimeout(800);
    await page.mouse.move(0, 0);
    await page.screenshot({ path: path.join(out, `${name}.png`), fullPage: name !== "envs" });
  };
  await go("#/", ".project-card", "projects");
  await go("#/p/demo/stream", "table.vs", "stream");
  await go("#/p/demo/envs", ".env-card[data-env=production] svg.traffic", "envs");
  await go("#/p/demo/metrics", ".trend", "metrics");
  await go("#/p/demo/incidents", "table.grid", "incidents");
  if (b.errors.length) throw new Error(b.errors.join("\n"));
  console.log(`screenshots in ${out}`);
} finally {
  await b.close();
}
