#!/usr/bin/env python3
"""Webhook received -> first job's process started, against a real `andon server`.

    python3 webhook.py --andon target/release/andon --work DIR [--triggers 100]

Starts `andon server` on a free 127.0.0.1 port with a fresh data directory,
adds a project (poll off) whose one job appends "$ANDON_RUN_ID <date +%s%N>"
to a file, then, TRIGGERS times, one after another: commits to the repository,
sends a signed GitHub push webhook (the clock is read just before sending),
waits for the job's line and for the run to finish. Latency = the job's own
timestamp - the send time. The event log's `at_ms` of run_queued, run_started
and job_started split each latency into where the time went.

Prints a JSON summary on stdout; progress on stderr. Only the standard library.
"""
import argparse
import hashlib
import hmac
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request

TOKEN = "bench-admin-token"
SECRET = "bench-webhook-secret"
FINISHED = {"passed", "failed", "cancelled", "interrupted", "timed_out", "skipped"}


def log(msg: str) -> None:
    print(f"== {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def git(repo: str, *args: str) -> str:
    env = dict(os.environ, GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="bench@localhost",
               GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="bench@localhost")
    return subprocess.run(["git", "-C", repo, *args], check=True, capture_output=True,
                          text=True, env=env).stdout.strip()


class Api:
    def __init__(self, base: str):
        self.base = base

    def call(self, method: str, path: str, body=None, headers=None, auth=True, raw=None):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("content-type", "application/json")
        if auth:
            req.add_header("authorization", f"Bearer {TOKEN}")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read() or b"null")


def percentile(xs, p):
    """Nearest-rank percentile (p in 0..100)."""
    s = sorted(xs)
    k = max(1, -(-len(s) * p // 100))  # ceil
    return s[int(k) - 1]


def wait_for(pred, timeout: float, every: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(every)
    raise TimeoutError(f"timed out waiting for {what}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--andon", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--triggers", type=int, default=100)
    ap.add_argument("--raw", help="write per-trigger samples (JSON lines) here")
    a = ap.parse_args()
    # A SIGTERM from the calling script must still stop the server (the finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    repo = os.path.join(a.work, "repo")
    data = os.path.join(a.work, "data")
    started = os.path.join(a.work, "started")
    os.makedirs(repo)
    open(started, "w").close()
    git(repo, "init", "-q", "-b", "main")
    with open(os.path.join(repo, "andon.yaml"), "w") as f:
        f.write(
            "project: hook\ntrunk: main\n\npipeline:\n  stages:\n    - name: s\n      jobs:\n"
            "        - name: stamp\n"
            f"          run: echo \"$ANDON_RUN_ID $(date +%s%N)\" >> {started}\n"
        )
    git(repo, "add", "andon.yaml")
    git(repo, "commit", "-q", "-m", "bench: one job that stamps its start")

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server_log = open(os.path.join(a.work, "server.log"), "w")
    env = dict(os.environ, ANDON_ADMIN_TOKEN=TOKEN, RUST_LOG=os.environ.get("RUST_LOG", "warn"))
    server = subprocess.Popen([a.andon, "server", "--data", data, "--listen", f"127.0.0.1:{port}",
                               "--no-router"],
                              env=env, stdout=server_log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        return drive(a, Api(base), repo, started, server)
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def healthy(api: Api) -> bool:
    try:
        return api.call("GET", "/healthz", auth=False)[0] == 200
    except (urllib.error.URLError, ConnectionError, OSError):
        return False


def run_status(api: Api, run_id: int) -> str:
    return api.call("GET", f"/api/v1/runs/{run_id}")[1]["status"]


def stamps(path: str) -> dict:
    out = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 2:
                out[int(parts[0])] = int(parts[1])
    return out


def drive(a, api: Api, repo: str, started: str, server) -> int:
    wait_for(lambda: healthy(api) or server.poll() is not None, 30, 0.05, "the server")
    if server.poll() is not None:
        with open(os.path.join(a.work, "server.log")) as f:
            tail = f.read()[-3000:]
        raise RuntimeError(f"andon server exited at start:\n{tail}")
    st, body = api.call("POST", "/api/v1/projects", {
        "name": "hook", "repo": os.path.abspath(repo), "poll": "0s", "webhook_secret": SECRET})
    assert st == 201, (st, body)
    first = body.get("run_id")
    if first is not None:
        wait_for(lambda: run_status(api, first) in FINISHED, 60, 0.05, "the first run")
        if run_status(api, first) != "passed":
            raise RuntimeError(f"the first run did not pass: {api.call('GET', f'/api/v1/runs/{first}')[1]}")

    samples = []
    log(f"sending {a.triggers} webhooks, one at a time")
    for i in range(a.triggers):
        git(repo, "commit", "-q", "--allow-empty", "-m", f"trigger {i}")
        sha = git(repo, "rev-parse", "HEAD")
        body = json.dumps({"ref": "refs/heads/main", "after": sha}).encode()
        sig = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        headers = {"x-hub-signature-256": f"sha256={sig}", "x-github-event": "push"}
        sent_ns = time.time_ns()
        st, resp = api.call("POST", "/api/v1/webhooks/github?project=hook", headers=headers,
                            auth=False, raw=body)
        acked_ns = time.time_ns()
        if st != 202 or resp.get("status") != "queued":
            raise RuntimeError(f"webhook {i}: {st} {resp}")
        run_id = resp["run_id"]
        job_ns = wait_for(lambda: stamps(started).get(run_id), 30, 0.002, f"run {run_id}'s job")
        wait_for(lambda: run_status(api, run_id) in FINISHED, 30, 0.01, f"run {run_id} to end")
        samples.append({"run_id": run_id, "sent_ns": sent_ns, "acked_ns": acked_ns, "job_ns": job_ns})

    # Where the time went, from the event log's timestamps (ms).
    events = []
    after = 0
    while True:
        page = api.call("GET", f"/api/v1/events?after={after}&limit=5000")[1]
        if not page:
            break
        events.extend(page)
        after = page[-1]["seq"]
    at = {}
    for e in events:
        rid = e.get("run_id")
        if rid is not None and e["type"] in ("run_queued", "run_started", "job_started", "run_finished"):
            at.setdefault((rid, e["type"]), e["at_ms"])
    for s in samples:
        rid = s["run_id"]
        sent_ms = s["sent_ns"] / 1e6
        q, r, j = (at.get((rid, t)) for t in ("run_queued", "run_started", "job_started"))
        s["latency_ms"] = (s["job_ns"] - s["sent_ns"]) / 1e6
        s["ack_ms"] = (s["acked_ns"] - s["sent_ns"]) / 1e6
        if None not in (q, r, j):
            s["to_queued_ms"] = q - sent_ms
            s["queued_to_started_ms"] = r - q
            s["started_to_job_event_ms"] = j - r
            s["job_event_to_process_ms"] = s["job_ns"] / 1e6 - j
    if a.raw:
        with open(a.raw, "w") as f:
            for s in samples:
                f.write(json.dumps(s) + "\n")

    def summary(key):
        xs = [s[key] for s in samples if key in s]
        if not xs:
            return None
        return {"p50": round(statistics.median(xs), 2), "p99": round(percentile(xs, 99), 2),
                "min": round(min(xs), 2), "max": round(max(xs), 2)}

    out = {"triggers": len(samples)}
    for key in ("latency_ms", "ack_ms", "to_queued_ms", "queued_to_started_ms",
                "started_to_job_event_ms", "job_event_to_process_ms"):
        out[key] = summary(key)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
