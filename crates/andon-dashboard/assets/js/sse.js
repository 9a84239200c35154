// Server-Sent Events over fetch(). EventSource cannot send an Authorization
// header, and tokens stay out of URLs (they end up in logs and history), so
// the stream is read with a ReadableStream reader and parsed here as the
// HTML standard describes: `event:`, `data:`, `id:` lines, a blank line ends
// a message, lines starting with `:` are comments (keep-alives).

import { open } from "./api.js";

/**
 * Reads one SSE response until it ends or `signal` aborts. Calls
 * onMessage({event, data, id}) for each message. Resolves when the server
 * closes the stream; rejects on network errors (not on abort).
 */
export async function readSse(path, { signal, onMessage, onOpen, headers } = {}) {
  let resp;
  try {
    resp = await open(path, { signal, headers });
  } catch (e) {
    if (signal && signal.aborted) return;
    throw e;
  }
  if (onOpen) onOpen();
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  let event = "";
  let data = [];
  let id = null;
  const dispatch = () => {
    if (data.length) onMessage({ event: event || "message", data: data.join("\n"), id });
    event = "";
    data = [];
  };
  const line = (l) => {
    if (l === "") return dispatch();
    if (l.startsWith(":")) return undefined;
    const i = l.indexOf(":");
    const field = i < 0 ? l : l.slice(0, i);
    let value = i < 0 ? "" : l.slice(i + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
    else if (field === "id") id = value;
    return undefined;
  };
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      let nl;
      while ((nl = buf.search(/\r\n|\r|\n/)) >= 0) {
        const l = buf.slice(0, nl);
        const len = buf.startsWith("\r\n", nl) ? 2 : 1;
        // A lone \r at the very end may be the first half of \r\n: wait.
        if (len === 1 && buf[nl] === "\r" && nl === buf.length - 1) break;
        buf = buf.slice(nl + len);
        line(l);
      }
    }
    if (buf) line(buf);
    dispatch();
  } catch (e) {
    if (signal && signal.aborted) return;
    throw e;
  } finally {
    try {
      reader.releaseLock();
    } catch {
      /* already released */
    }
  }
}
