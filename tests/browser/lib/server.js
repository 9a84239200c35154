// A real `andon server` on 127.0.0.1 for the browser tests: a temp data
// directory, a temp git repository with a small pipeline, an admin token
// from the environment, and cleanup of every process it started.

import { spawn, execFileSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
export const ADMIN = "andon-browser-test-admin-token-0123456789";

export function andonBin() {
  if (process.env.ANDON_BIN) return process.env.ANDON_BIN;
  const target = process.env.CARGO_TARGET_DIR || path.join(ROOT, "target");
  return path.join(target, "debug", "andon");
}

export function sampleServiceBin() {
  if (process.env.SAMPLE_SERVICE_BIN) return process.env.SAMPLE_SERVICE_BIN;
  const target = process.env.CARGO_TARGET_DIR || path.join(ROOT, "target");
  return path.join(target, "debug", "sample-service");
}

/** A port nobody listens on right now (bound to 0, then released). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls fn until it returns a truthy value, at most `timeout` ms. */
export async function until(what, fn, { timeout = 60000, every = 200 } = {}) {
  const end = Date.now() + timeout;
  let last;
  while (Date.now() < end) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await sleep(every);
  }
  throw new Error(`timed out waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
}

let author = "Ada Lovelace";

function git(cwd, ...args) {
  const email = `${author.split(" ")[0].toLowerCase()}@example.com`;
  return execFileSync("git", args, {
    cwd,
    env: {
      ...process.env,
      GIT_AUTHOR_NAME: author, GIT_AUTHOR_EMAIL: email,
      GIT_COMMITTER_NAME: author, GIT_COMMITTER_EMAIL: email,
      GIT_CONFIG_NOSYSTEM: "1", HOME: os.tmpdir(),
    },
    stdio: ["ignore", "pipe", "pipe"],
  }).toString().trim();
}

export const PIPELINE = `project: shop
trunk: main
pipeline:
  stages:
    - name: commit
      kind: unit
      jobs:
        - name: unit-tests
          run: |
            echo "compiling"
            sleep 3
            mkdir -p "$ANDON_REPORTS"
            printf '<testsuite name="unit" tests="3"><testcase name="adds"/><testcase name="subtracts"/><testcase name="skips"><skipped/></testcase></testsuite>' > "$ANDON_REPORTS/unit.xml"
            echo "3 tests: 2 passed, 1 skipped"
        - name: lint
          run: echo "lint clean"
    - name: package
      jobs:
        - name: build
          needs: [unit-tests, lint]
          run: mkdir -p dist && echo "app" > dist/app && echo built dist/app
          artifacts: [dist/app]
    - name: acceptance
      kind: acceptance
      jobs:
        - name: api-tests
          needs: [build]
          run: echo "api ok"
        - name: smoke
          needs: [build]
          run: echo "smoke ok"
`;

export const ENVS = `environments:
  staging:
    target:
      process:
        command: ./dist/app --port $PORT
        health: /healthz
    strategy: blue-green
  production:
    after: staging
    target:
      process:
        command: ./dist/app --port $PORT
        instances: 2
        health: /healthz
    strategy:
      canary:
        steps:
          - { weight: 10, for: 1m }
          - { weight: 50, for: 1m }
`;

/** A git repository with one commit on main, by `who`. */
export function makeRepo(dir, { yaml = PIPELINE + ENVS, message = "Add the checkout page", who = "Ada Lovelace" } = {}) {
  author = who;
  fs.mkdirSync(dir, { recursive: true });
  git(dir, "init", "-q", "-b", "main");
  fs.writeFileSync(path.join(dir, "andon.yaml"), yaml);
  fs.writeFileSync(path.join(dir, "README.md"), "# shop\n");
  git(dir, "add", "-A");
  git(dir, "commit", "-q", "-m", message);
  return dir;
}

export function commit(dir, file, content, message, who = "Ada Lovelace") {
  author = who;
  fs.writeFileSync(path.join(dir, file), content);
  git(dir, "add", "-A");
  git(dir, "commit", "-q", "-m", message);
  return git(dir, "rev-parse", "HEAD");
}

/** Pids of processes whose command line or cwd mentions `dir`. */
export function processesUnder(dir) {
  const out = [];
  let entries = [];
  try { entries = fs.readdirSync("/proc"); } catch { return out; }
  for (const e of entries) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${e}/cmdline`, "utf8").replaceAll("\0", " ");
      let cwd = "";
      try { cwd = fs.readlinkSync(`/proc/${e}/cwd`); } catch { /* not ours to read */ }
      if (cmd.includes(dir) || cwd.startsWith(dir)) out.push(Number(e));
    } catch { /* exited */ }
  }
  return out;
}

function withoutRouterToken() {
  const env = { ...process.env };
  delete env.ANDON_ROUTER_TOKEN;
  return env;
}

export class Server {
  constructor() {
    this.tmp = fs.mkdtempSync(path.join(os.tmpdir(), "andon-browser-"));
    this.proc = null;
    this.url = "";
    this.log = path.join(this.tmp, "server.log");
    this.extraPids = [];
  }

  /**
   * Starts `andon server`. router: "external" starts `andon router` first
   * and links the server to it (--router-admin/--router-url); "own" lets the
   * server start its own router on free ports; false passes --no-router.
   */
  async start(opts = {}) {
    try {
      return await this.launch(opts);
    } catch (e) {
      await this.stop();
      throw e;
    }
  }

  async launch({ router = false } = {}) {
    const port = await freePort();
    this.url = `http://127.0.0.1:${port}`;
    const args = ["server", "--data", path.join(this.tmp, "data"), "--listen", `127.0.0.1:${port}`];
    if (router) {
      this.routerPort = await freePort();
      this.routerAdminPort = await freePort();
    }
    if (router === "own") {
      args.push("--router-listen", `127.0.0.1:${this.routerPort}`, "--router-admin-listen", `127.0.0.1:${this.routerAdminPort}`);
    } else if (router) {
      const rlog = fs.openSync(path.join(this.tmp, "router.log"), "a");
      const r = spawn(andonBin(), [
        "router", "--data", path.join(this.tmp, "router"),
        "--listen", `127.0.0.1:${this.routerPort}`, "--admin", `127.0.0.1:${this.routerAdminPort}`,
      ], { env: withoutRouterToken(), stdio: ["ignore", rlog, rlog], detached: true });
      fs.closeSync(rlog);
      this.extraPids.push(r.pid);
      const admin = `http://127.0.0.1:${this.routerAdminPort}`;
      await until("the router's admin /healthz", async () => (await fetch(`${admin}/healthz`)).ok, { timeout: 30000 });
      args.push("--router-admin", admin, "--router-url", `http://127.0.0.1:${this.routerPort}`);
    } else {
      args.push("--no-router");
    }
    const out = fs.openSync(this.log, "a");
    this.proc = spawn(andonBin(), args, {
      env: { ...process.env, ANDON_ADMIN_TOKEN: ADMIN, RUST_LOG: process.env.RUST_LOG || "warn" },
      stdio: ["ignore", out, out],
      detached: true,
    });
    fs.closeSync(out);
    await until("the server's /healthz", async () => (await fetch(`${this.url}/healthz`)).ok, { timeout: 30000 });
    return this;
  }

  async api(method, p, body, token = ADMIN) {
    const resp = await fetch(`${this.url}${p}`, {
      method,
      headers: { Authorization: `Bearer ${token}`, ...(body ? { "Content-Type": "application/json" } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await resp.text();
    const json = text ? JSON.parse(text) : null;
    if (!resp.ok) throw new Error(`${method} ${p}: ${resp.status} ${text}`);
    return json;
  }

  async token(name, role) {
    const t = await this.api("POST", "/api/v1/tokens", { name, role });
    return t.token;
  }

  async waitRun(id, pred = (r) => !["queued", "running"].includes(r.status), timeout = 90000) {
    return until(`run ${id}`, async () => {
      const r = await this.api("GET", `/api/v1/runs/${id}`);
      return pred(r) ? r : null;
    }, { timeout });
  }

  async spec() {
    return (await fetch(`${this.url}/api/v1/openapi.json`)).json();
  }

  /** Ends the server's process group (it and the jobs it ran), then anything recorded. */
  async stop() {
    const pids = [...this.extraPids];
    if (this.proc && this.proc.exitCode === null) {
      try { process.kill(-this.proc.pid, "SIGTERM"); } catch { /* gone */ }
      const end = Date.now() + 10000;
      while (this.proc.exitCode === null && this.proc.signalCode === null && Date.now() < end) await sleep(100);
      try { process.kill(-this.proc.pid, "SIGKILL"); } catch { /* gone */ }
    }
    // The server's own router and the service instances it started live in
    // their own process groups (they outlive a server restart on purpose):
    // end those whose command line or working directory is in our temp dir.
    for (const pid of [...pids, ...processesUnder(this.tmp)]) {
      try { process.kill(pid, "SIGKILL"); } catch { /* gone */ }
    }
    if (!process.env.KEEP_TMP) fs.rmSync(this.tmp, { recursive: true, force: true });
  }
}
