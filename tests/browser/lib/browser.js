// Debian's Chromium, headless, through playwright-core: never a browser
// that a tool downloads. Each test gets a fresh profile directory, and every
// console error or uncaught exception of a page is recorded.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";
import { ROOT } from "./server.js";

export const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
/** CI keeps this directory as an artifact (docs/dashboard.md lists it). */
export const ARTIFACTS = process.env.ANDON_ARTIFACTS || path.join(ROOT, "target", "ci-artifacts");
export const SHOTS = path.join(ARTIFACTS, "screenshots");

export async function openBrowser({ colorScheme = "light", width = 1440, height = 900 } = {}) {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "andon-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--no-first-run",
    ],
    viewport: { width, height },
    colorScheme,
    timeout: 60000,
  });
  const page = context.pages()[0] || (await context.newPage());
  const errors = [];
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "assert") errors.push(`console.${m.type()}: ${m.text()}`);
  });
  page.on("pageerror", (e) => errors.push(`pageerror: ${e.message}`));
  return {
    context,
    page,
    errors,
    async close() {
      await context.close().catch(() => {});
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Opens the dashboard and signs in with a token. */
export async function signIn(page, url, token) {
  await page.goto(`${url}/#/login`);
  await page.getByLabel("API token").fill(token);
  await page.getByRole("button", { name: "Connect" }).click();
  await page.locator(".project-card, .empty").first().waitFor({ timeout: 20000 });
}

export async function shot(page, name) {
  fs.mkdirSync(SHOTS, { recursive: true });
  const file = path.join(SHOTS, `${name}.png`);
  await page.mouse.move(0, 0); // no hover state in the picture
  await page.screenshot({ path: file, fullPage: true });
  return file;
}
