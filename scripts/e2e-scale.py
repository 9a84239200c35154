#!/usr/bin/env python3
"""The scale end-to-end test: driven by scripts/e2e-scale.sh, which builds
`andon` and starts a private PostgreSQL. Standard library only.

Phases (each must end as described, or the script exits 1):
  1. agent killed: a job running on one agent is killed with the agent
     (kill -9); the lease expires and the job passes on the other agent.
  2. leader killed: the leading server is killed (kill -9) while a run is in
     flight; the other server takes over (takeover_s: from the kill until it
     reports itself leader), ends the cut-off run and runs the commit again,
     which passes. The killed server restarts and rejoins as a follower.
  3. HAProxy: production's traffic goes through a real HAProxy driven by the
     leader over its runtime API; v1 is deployed, then v2 by canary, then a
     rollback to v1, under steady traffic: failed_requests counts connection
     errors and 5xx answers (every version serves no errors on purpose).
Checks over the whole log (read from PostgreSQL through the API):
  lost_events: events seen before each kill that are missing or changed after;
               plus holes in the sequence.
  duplicated_jobs: attempts started or finished twice, or leased while the
               previous attempt of the same job was still open.
"""

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

TOKEN = "scale-e2e-admin-token-0123456789abcdef"
LEASE_TTL_MS = 3000


def log(msg):
    print(f"== {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Api:
    def __init__(self, port):
        self.port = port

    def call(self, method, path, body=None, timeout=10):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            headers = {"Authorization": f"Bearer {TOKEN}"}
            data = None
            if body is not None:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
            value = json.loads(raw) if raw else None
            return resp.status, value
        finally:
            conn.close()

    def get(self, path):
        status, value = self.call("GET", path)
        if status >= 400:
            raise RuntimeError(f"GET {path}: {status} {value}")
        return value

    def post(self, path, body):
        status, value = self.call("POST", path, body)
        if status >= 400:
            raise RuntimeError(f"POST {path}: {status} {value}")
        return value

    def up(self):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            conn.request("GET", "/healthz")
            ok = conn.getresponse().status == 200
            conn.close()
            return ok
        except OSError:
            return False

    def events(self):
        out, after = [], 0
        while True:
            batch = self.get(f"/api/v1/events?after={after}&limit=5000")
            if not batch:
                return out
            out.extend(batch)
            after = batch[-1]["seq"]


def wait_for(what, check, timeout):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.1)


class Cluster:
    def __init__(self, args):
        self.andon = args.andon
        self.pg = args.pg
        self.work = args.work
        self.procs = {}
        self.servers = {}

    def spawn(self, name, argv, env=None):
        out = open(os.path.join(self.work, f"{name}.log"), "ab")
        full_env = dict(os.environ, NO_COLOR="1", **(env or {}))
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                             env=full_env, start_new_session=True)
        self.procs[name] = p
        return p

    def start_server(self, name):
        if name not in self.servers:
            self.servers[name] = {
                "port": free_port(),
                "router": free_port(),
                "router_admin": free_port(),
                "data": os.path.join(self.work, f"data-{name}"),
            }
        s = self.servers[name]
        self.spawn(name, [
            self.andon, "server", "--data", s["data"],
            "--listen", f"127.0.0.1:{s['port']}",
            "--store", self.pg,
            "--advertise", f"http://127.0.0.1:{s['port']}",
            "--router-listen", f"127.0.0.1:{s['router']}",
            "--router-admin-listen", f"127.0.0.1:{s['router_admin']}",
        ], env={"ANDON_ADMIN_TOKEN": TOKEN, "ANDON_AGENT_LEASE_TTL_MS": str(LEASE_TTL_MS)})
        api = Api(s["port"])
        wait_for(f"server {name}", api.up, 60)
        return api

    def api(self, name):
        return Api(self.servers[name]["port"])

    def start_agent(self, name, server):
        self.spawn(name, [
            self.andon, "agent", "--server", f"http://127.0.0.1:{self.servers[server]['port']}",
            "--token", TOKEN, "--labels", "linux", "--name", name,
            "--work", os.path.join(self.work, f"agent-{name}"),
        ])

    def kill9(self, name):
        p = self.procs.pop(name)
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()

    def leader(self):
        for name in self.servers:
            if name in self.procs:
                try:
                    status, c = self.api(name).call("GET", "/api/v1/cluster", timeout=3)
                except OSError:
                    continue
                if status == 200 and c.get("leader"):
                    return name
        return None

    def stop_all(self):
        for p in self.procs.values():
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for p in self.procs.values():
            p.wait()
        self.procs.clear()
        # Routers and instances the servers started live in their own
        # sessions (they outlive a server on purpose): end whatever still
        # runs from this test's directory.
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or int(pid) == os.getpid():
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
                cwd = os.readlink(f"/proc/{pid}/cwd")
            except OSError:
                continue
            if self.work in cmd or cwd.startswith(self.work):
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass


def git(repo, *args):
    env = dict(os.environ, GIT_AUTHOR_NAME="scale", GIT_AUTHOR_EMAIL="scale@localhost",
               GIT_COMMITTER_NAME="scale", GIT_COMMITTER_EMAIL="scale@localhost")
    subprocess.run(["git", "-C", repo, *args], check=True, env=env,
                   stdout=subprocess.DEVNULL)


def make_repo(work, andon, socket_path):
    repo = os.path.join(work, "repo")
    os.makedirs(repo)
    run = "set -a; . ./dist/release.env; exec ./dist/app --port $PORT"
    with open(os.path.join(repo, "andon.yaml"), "w") as f:
        f.write(f"""project: scale
trunk: main
pipeline:
  stages:
    - name: build
      jobs:
        - name: build
          runs_on: [linux]
          env: {{ SCALE_BIN: "{andon}" }}
          run: |
            sleep "$(cat slow.txt)"
            mkdir -p dist
            printf '#!/bin/sh\\nexec "%s" sample-service "$@"\\n' "$SCALE_BIN" > dist/app
            chmod +x dist/app
            cp release.env dist/release.env
          artifacts: [dist]
environments:
  production:
    target:
      process: {{ command: "{run}", instances: 2, health: /healthz }}
    traffic:
      haproxy: {{ socket: {socket_path}, backend: app }}
    strategy:
      canary:
        steps:
          - {{ weight: 20, for: 4s }}
          - {{ weight: 50, for: 4s }}
          - {{ weight: 100 }}
    judge:
      max_error_rate: 10%
      compare_to_baseline: false
      min_requests: 30
    rollback_window: 30m
""")
    git(repo, "init", "-q", "-b", "main")
    commit(repo, "v1", 0)
    return repo


def commit(repo, version, slow, message=None):
    with open(os.path.join(repo, "release.env"), "w") as f:
        f.write(f"VERSION={version}\nERROR_RATE=0\n")
    with open(os.path.join(repo, "slow.txt"), "w") as f:
        f.write(f"{slow}\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "--allow-empty", "-m", message or f"{version} (job takes {slow}s)")


def start_haproxy(work, cluster):
    sock = os.path.join(work, "haproxy.sock")
    port = free_port()
    cfg = os.path.join(work, "haproxy.cfg")
    # No `option redispatch`: a request sent to a stopped instance fails
    # instead of being saved by HAProxy, so the driver's mistakes show.
    with open(cfg, "w") as f:
        f.write(f"""global
    stats socket {sock} mode 600 level admin
    maxconn 2000
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    retries 3
frontend fe
    bind 127.0.0.1:{port}
    default_backend app
backend app
    balance roundrobin
    server-template s 1-16 127.0.0.1:1 disabled
""")
    cluster.spawn("haproxy", ["haproxy", "-db", "-f", cfg])
    wait_for("haproxy", lambda: os.path.exists(sock), 10)
    return sock, port


class Traffic(threading.Thread):
    """Steady requests through HAProxy, keep-alive, bounded by `stop`."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.stop = threading.Event()
        self.sent = 0
        self.failed = 0
        self.failures = []

    def run(self):
        conn = None
        deadline = time.monotonic() + 600
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                conn.request("GET", "/")
                resp = conn.getresponse()
                resp.read()
                self.sent += 1
                if resp.status >= 500:
                    self.failed += 1
                    self.failures.append(f"HTTP {resp.status}")
                if resp.getheader("connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as e:
                self.sent += 1
                self.failed += 1
                self.failures.append(repr(e))
                conn = None
            time.sleep(0.005)


def run_events(events, run_id):
    return [e for e in events if e.get("run_id") == run_id]


def wait_run(api, run_id, timeout=180):
    def done():
        run = api.get(f"/api/v1/runs/{run_id}")
        return run if run["status"] not in ("queued", "running") else None
    return wait_for(f"run {run_id}", done, timeout)


def trigger(api):
    return api.post("/api/v1/projects/scale/runs", {})["id"]


def wait_job_started(api, run_id, timeout=60):
    def started():
        evs = run_events(api.events(), run_id)
        leased = [e for e in evs if e["type"] == "job_leased"]
        begun = [e for e in evs if e["type"] == "job_started"]
        return leased[-1] if leased and begun else None
    return wait_for(f"a job of run {run_id} to start on an agent", started, timeout)


def deploy(api, run_id, reason):
    d = api.post("/api/v1/projects/scale/environments/production/deploys",
                 {"run": run_id, "reason": reason})
    return wait_deploy(api, d["deploy_id"])


def wait_deploy(api, deploy_id, timeout=180):
    def finished():
        phase = api.get(f"/api/v1/deploys/{deploy_id}")["phase"]
        return phase.get("finished") if isinstance(phase, dict) else None
    return wait_for(f"deploy {deploy_id}", finished, timeout)


def check_log(events, snapshots):
    """(lost, duplicated) over the final log."""
    by_seq = {e["seq"]: e for e in events}
    lost = 0
    for snap in snapshots:
        for e in snap:
            if by_seq.get(e["seq"]) != e:
                lost += 1
    seqs = sorted(by_seq)
    lost += sum(1 for a, b in zip(seqs, seqs[1:]) if b != a + 1)
    dup = 0
    started, finished = {}, {}
    open_attempt = {}
    for e in events:
        key = (e.get("run_id"), e.get("job"), e.get("attempt"))
        if e["type"] == "job_started":
            started[key] = started.get(key, 0) + 1
        elif e["type"] == "job_finished":
            finished[key] = finished.get(key, 0) + 1
            open_attempt.pop(key[:2], None)
        elif e["type"] == "job_leased":
            if key[:2] in open_attempt:
                dup += 1
            open_attempt[key[:2]] = key[2]
    dup += sum(n - 1 for n in started.values() if n > 1)
    dup += sum(n - 1 for n in finished.values() if n > 1)
    return lost, dup


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--andon", required=True)
    ap.add_argument("--pg", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--short", action="store_true")
    args = ap.parse_args()
    args.andon = os.path.realpath(args.andon)

    cluster = Cluster(args)
    problems = []
    snapshots = []
    takeover_s = float("nan")
    traffic = None
    try:
        sock, hport = start_haproxy(args.work, cluster)
        repo = make_repo(args.work, args.andon, sock)

        log("two servers on one PostgreSQL")
        a = cluster.start_server("a")
        wait_for("a leader", cluster.leader, 30)
        # Secrets are encrypted with the data directory's key file: servers
        # sharing a database share it (docs/cluster.md).
        os.makedirs(os.path.join(args.work, "data-b"), exist_ok=True)
        shutil.copy(os.path.join(args.work, "data-a", "secret.key"),
                    os.path.join(args.work, "data-b", "secret.key"))
        cluster.start_server("b")
        leader = cluster.leader()
        follower = "b" if leader == "a" else "a"
        log(f"leader {leader}, follower {follower}")
        a.post("/api/v1/projects", {"name": "scale", "repo": repo, "poll": "1h"})

        # Agents talk to the follower, which forwards to the leader: they
        # keep working when the leader dies.
        cluster.start_agent("x", follower)
        cluster.start_agent("y", follower)
        fapi = cluster.api(follower)
        wait_for("two agents", lambda: len(fapi.get("/api/v1/agents").get("agents", [])) >= 2, 30)

        log("phase 1: kill -9 the agent running a job")
        commit(repo, "v1", 6, "v1: slow build for the agent kill")
        r1 = trigger(fapi)
        leased = wait_job_started(fapi, r1)
        time.sleep(1)
        victim = leased["agent"]
        log(f"run {r1}: killing agent {victim}")
        cluster.kill9(victim)
        run = wait_run(fapi, r1)
        evs = run_events(fapi.events(), r1)
        agents = [e["agent"] for e in evs if e["type"] == "job_leased"]
        expired = [e for e in evs if e["type"] == "lease_expired"]
        if run["status"] != "passed" or not expired or agents[-1] == victim:
            problems.append(f"phase 1: run {r1} {run['status']}, leased by {agents}, "
                            f"{len(expired)} lease(s) expired")
        else:
            log(f"run {r1} passed on {agents[-1]} after {victim} was lost")
        cluster.start_agent(victim, follower)

        log("phase 2: kill -9 the leading server during a run")
        commit(repo, "v1", 6, "v1: slow build for the leader kill")
        r2 = trigger(fapi)
        wait_job_started(fapi, r2)
        snapshots.append(cluster.api(leader).events())
        killed_at = time.monotonic()
        cluster.kill9(leader)
        wait_for("the follower to take over",
                 lambda: cluster.api(follower).call("GET", "/api/v1/cluster", timeout=3)[1].get("leader"),
                 60)
        takeover_s = time.monotonic() - killed_at
        leader, follower = follower, leader
        lapi = cluster.api(leader)
        log(f"{leader} leads after {takeover_s:.2f}s")
        run = wait_run(lapi, r2, timeout=60)
        retry = wait_for("the run to be queued again",
                         lambda: [r for r in lapi.get("/api/v1/projects/scale/runs")
                                  if r["id"] > r2 and r["commit"] == run["commit"]], 30)[0]
        retried = wait_run(lapi, retry["id"])
        if run["status"] not in ("interrupted", "failed", "cancelled") or retried["status"] != "passed":
            problems.append(f"phase 2: cut-off run {r2} {run['status']}, "
                            f"its retry {retry['id']} {retried['status']}: "
                            f"{run_events(lapi.events(), retry['id'])[-6:]}")
        else:
            log(f"run {r2} {run['status']}; run {retry['id']} of the same commit passed")
        cluster.start_server(follower)
        if cluster.leader() != leader:
            problems.append(f"phase 2: {follower} took the lead back on restart")
        snapshots.append(lapi.events())

        log("phase 3: canary and rollback through HAProxy under traffic")
        v1 = deploy(lapi, retry["id"], "v1")
        traffic = Traffic(hport)
        traffic.start()
        commit(repo, "v2", 0)
        r3 = trigger(lapi)
        if wait_run(lapi, r3)["status"] != "passed":
            problems.append(f"phase 3: the v2 run {r3} failed")
        v2 = deploy(lapi, r3, "v2 by canary")
        time.sleep(1)
        status, body = lapi.call("POST", "/api/v1/projects/scale/environments/production/rollback",
                                 {"reason": "scale e2e: back to v1"})
        rb = "refused"
        if status < 300:
            latest = max(lapi.get("/api/v1/projects/scale/deploys"), key=lambda d: d["id"])
            rb = wait_deploy(lapi, latest["id"])
        time.sleep(1)
        traffic.stop.set()
        traffic.join()
        log(f"deploys: v1 {v1}, v2 {v2}, rollback {rb}; {traffic.sent} requests, "
            f"{traffic.failed} failed {traffic.failures[:5]}")
        if v1 != "succeeded" or v2 != "succeeded" or rb != "succeeded":
            problems.append(f"phase 3: v1 {v1}, v2 {v2}, rollback {rb} ({status} {body})")
        if traffic.sent < 100:
            problems.append(f"phase 3: only {traffic.sent} requests went through HAProxy")

        final = lapi.events()
        lost, dup = check_log(final, snapshots)
        stuck = [r["id"] for r in lapi.get("/api/v1/projects/scale/runs")
                 if r["status"] in ("queued", "running")]
        if stuck:
            problems.append(f"runs left unfinished: {stuck}")
    except Exception as e:  # a phase that could not even finish
        problems.append(f"aborted: {e}")
        lost, dup = -1, -1
    finally:
        if traffic is not None:
            traffic.stop.set()
        cluster.stop_all()
    failed = traffic.failed if traffic else -1
    for p in problems:
        log(f"PROBLEM: {p}")
    print(f"scale-e2e lost_events: {lost} duplicated_jobs: {dup} "
          f"failed_requests: {failed} takeover_s: {takeover_s:.2f}")
    sys.exit(0 if not problems and lost == 0 and dup == 0 and failed == 0 else 1)


if __name__ == "__main__":
    main()
