import path from "node:path";
import { Server, makeRepo, commit, until, sampleServiceBin } from "./lib/server.js";
const srv = await new Server().start({ router: "external" });
try {
  const repo = path.join(srv.tmp, "shop");
  const src = (await import("node:fs")).readFileSync("tests/canary.test.js", "utf8");
  const yaml = src.slice(src.indexOf("`project: shop"), src.indexOf("`;\n\nlet srv")).slice(1).replace("${bin}", sampleServiceBin());
  makeRepo(repo, { yaml, message: "Ship v1" });
  commit(repo, "release.env", "export VERSION=v1 ERROR_RATE=0.01\n", "Release v1");
  const p = await srv.api("POST", "/api/v1/projects", { name: "shop", repo, poll: "0s" });
  const r1 = await srv.waitRun(p.run_id);
  const d1 = await srv.api("POST", "/api/v1/projects/shop/environments/production/deploys", { run: r1.id });
  const d = await until("v1", async () => { const d = await srv.api("GET", `/api/v1/deploys/${d1.deploy_id}`); return d.phase && d.phase.finished ? d : null; });
  console.log(JSON.stringify(d));
  console.log(JSON.stringify(await srv.api("GET", "/api/v1/projects/shop/environments"), null, 1));
} finally { await srv.stop(); }
