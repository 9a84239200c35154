// The dashboard's SSE reader (fetch + ReadableStream, since EventSource
// cannot send a bearer token), fed chunks that split lines, CRLFs and
// messages at awkward places, inside the page's own module instance.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { Server, ADMIN } from "../lib/server.js";
import { openBrowser, signIn } from "../lib/browser.js";

let srv;
before(async () => { srv = await new Server().start(); });
after(async () => { if (srv) await srv.stop(); });

test("SSE messages are parsed across chunk boundaries", async () => {
  const b = await openBrowser();
  try {
    const { page } = b;
    await signIn(page, srv.url, ADMIN);
    const got = await page.evaluate(async () => {
      const chunks = ["id: 7\nevent: run_started\ndata: {\"a\"", ":1}\r", "\n\r\n: keep-alive\n\n", "data: line1\ndata:line2\n", "\nevent: end\ndata:\n\n"];
      const real = window.fetch;
      window.fetch = async () => new Response(new ReadableStream({
        start(c) {
          const enc = new TextEncoder();
          for (const ch of chunks) c.enqueue(enc.encode(ch));
          c.close();
        },
      }), { status: 200, headers: { "Content-Type": "text/event-stream" } });
      try {
        const { readSse } = await import("/assets/js/sse.js");
        const out = [];
        await readSse("/api/v1/events/stream?after=0", { onMessage: (m) => out.push(m) });
        return out;
      } finally {
        window.fetch = real;
      }
    });
    assert.deepEqual(got, [
      { event: "run_started", data: "{\"a\":1}", id: "7" },
      { event: "message", data: "line1\nline2", id: "7" },
      { event: "end", data: "", id: "7" },
    ]);
    assert.deepEqual(b.errors, [], b.errors.join("\n"));
  } finally {
    await b.close();
  }
});
