#!/usr/bin/env python3
"""Chaos driver for scripts/chaos.sh (stdlib only; see that script's header).

Everything runs on 127.0.0.1 in a temporary directory: a git repository, a
standalone `andon router`, `andon server` releasing through it, the sample
service's instances, and one client thread sending bounded steady traffic
through the router. The server is the only thing killed.
"""

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

TOKEN = "andon_chaos_admin_token_0123456789abcdef"
ROUTER_TOKEN = "chaos-router-token"
PROJECT = "chaos"
SETTLE_S = 60.0


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


ANDON_YAML = """project: chaos
trunk: main
pipeline:
  stages:
    - name: test
      jobs:
        - name: unit
          run: sleep 1 && grep -q VERSION release.env
        - name: lint
          run: sleep 2
    - name: package
      jobs:
        - name: build
          env: {{ CHAOS_BIN: "{bin}" }}
          run: |
            mkdir -p dist
            printf '#!/bin/sh\\nexec "%s" sample-service "$@"\\n' "$CHAOS_BIN" > dist/app
            chmod +x dist/app
            cp release.env dist/release.env
            sleep 1
          artifacts: [dist]
environments:
  production:
    target:
      process: {{ command: "set -a; . ./dist/release.env; exec ./dist/app --port $PORT", instances: 2, health: /healthz }}
    strategy:
      canary:
        steps:
          - {{ weight: 25, for: 3s }}
          - {{ weight: 60, for: 3s }}
          - {{ weight: 100 }}
    judge:
      max_error_rate: 10%
      compare_to_baseline: false
      alpha: 0.01
      min_requests: 20
"""


class Chaos:
    def __init__(self, args):
        self.args = args
        self.bin = os.path.abspath(args.andon)
        self.root = tempfile.mkdtemp(prefix="andon-chaos-")
        self.repo = os.path.join(self.root, "repo")
        self.data = os.path.join(self.root, "data")
        self.port = free_port()
        self.router_port = free_port()
        self.router_admin = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.server = None
        self.router = None
        self.seen = {}  # seq -> canonical JSON of every event read so far
        self.lost = set()
        self.bad_versions = set()
        self.stuck = 0
        self.orphans = 0
        self.kill_phases = {}
        self.stop = threading.Event()
        self.requests = 0
        self.failed = 0
        self.canary_errors = 0
        self.failures = []
        self.lock = threading.Lock()

    # ---------- processes ----------
    def git(self, *a):
        subprocess.run(
            ["git", "-C", self.repo, *a],
            check=True,
            stdout=subprocess.DEVNULL,
            env={
                **os.environ,
                "GIT_AUTHOR_NAME": "Chaos",
                "GIT_AUTHOR_EMAIL": "chaos@example.com",
                "GIT_COMMITTER_NAME": "Chaos",
                "GIT_COMMITTER_EMAIL": "chaos@example.com",
            },
        )

    def commit(self, version, error_rate):
        with open(os.path.join(self.repo, "release.env"), "w") as f:
            f.write(f"VERSION={version}\nERROR_RATE={error_rate}\n")
        self.git("add", "-A")
        self.git("commit", "-q", "-m", f"release {version}")

    def start_router(self):
        self.router = subprocess.Popen(
            [self.bin, "router", "--data", os.path.join(self.root, "router"),
             "--listen", f"127.0.0.1:{self.router_port}",
             "--admin", f"127.0.0.1:{self.router_admin}",
             "--admin-token", ROUTER_TOKEN],
            stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(self.root, "router.log"), "ab"),
            env={**os.environ, "NO_COLOR": "1"},
            start_new_session=True,
        )

    def start_server(self):
        self.server = subprocess.Popen(
            [self.bin, "server", "--data", self.data,
             "--listen", f"127.0.0.1:{self.port}",
             "--router-admin", f"http://127.0.0.1:{self.router_admin}",
             "--router-url", f"http://127.0.0.1:{self.router_port}",
             "--router-token", ROUTER_TOKEN,
             "--parallelism", "2"],
            stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(self.root, "server.log"), "ab"),
            env={**os.environ, "NO_COLOR": "1", "ANDON_ADMIN_TOKEN": TOKEN},
            start_new_session=True,
        )
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.server.poll() is not None:
                raise SystemExit(f"chaos: the server exited ({self.server.returncode}); see {self.root}/server.log")
            try:
                with urllib.request.urlopen(self.base + "/healthz", timeout=2):
                    return
            except OSError:
                time.sleep(0.1)
        raise SystemExit("chaos: the server did not answer /healthz within 60 s")

    # ---------- API ----------
    def api(self, method, path, body=None, timeout=10):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {TOKEN}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                raw = r.read()
                return r.status, (json.loads(raw) if raw else None)
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw)
            except ValueError:
                return e.code, raw.decode(errors="replace")
        except (OSError, http.client.HTTPException):
            return None, None

    def events(self):
        out, after = [], 0
        while True:
            status, page = self.api("GET", f"/api/v1/events?after={after}&limit=5000", timeout=30)
            if status != 200:
                raise RuntimeError(f"events answered {status}: {page}")
            if not page:
                return out
            out.extend(page)
            after = page[-1]["seq"]

    def remember_events(self):
        """Reads the whole log and records every event; returns how many
        events seen earlier are now missing or changed."""
        now = {e["seq"]: json.dumps(e, sort_keys=True) for e in self.events()}
        newly_lost = 0
        for seq, text in self.seen.items():
            if now.get(seq) != text and seq not in self.lost:
                self.lost.add(seq)
                newly_lost += 1
                log(f"LOST event {seq}: before {text[:200]} / after {str(now.get(seq))[:200]}")
        for seq, text in now.items():
            self.seen.setdefault(seq, text)
        return newly_lost

    def run_status(self, run_id):
        status, run = self.api("GET", f"/api/v1/runs/{run_id}")
        return run.get("status") if status == 200 and isinstance(run, dict) else None

    @staticmethod
    def finished(deploy):
        phase = deploy.get("phase")
        return isinstance(phase, dict) and "finished" in phase

    def deploy_phase(self, deploy_id):
        status, d = self.api("GET", f"/api/v1/deploys/{deploy_id}")
        if status != 200 or not isinstance(d, dict):
            return None
        return d.get("phase")

    def wait_run(self, run_id, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            s = self.run_status(run_id)
            if s not in (None, "queued", "running"):
                return s
            time.sleep(0.2)
        raise SystemExit(f"chaos: run {run_id} did not finish in {timeout} s")

    def deploy(self, run_id):
        status, d = self.api("POST", f"/api/v1/projects/{PROJECT}/environments/production/deploys",
                             {"run": run_id, "reason": "chaos"})
        if status is None:
            return None
        if status >= 300:
            log(f"deploy of run {run_id} refused: {status} {d}")
            return None
        return d.get("deploy_id")

    def wait_deploy(self, deploy_id, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            phase = self.deploy_phase(deploy_id)
            if isinstance(phase, dict) and "finished" in phase:
                return phase["finished"]
            time.sleep(0.2)
        raise SystemExit(f"chaos: deploy {deploy_id} did not finish in {timeout} s")

    # ---------- traffic ----------
    def traffic(self):
        """Steady client load through the router, ~40 requests/s, a new
        connection each (the way most clients meet a restarted proxy)."""
        n = 0
        budget_end = time.time() + 6 * 3600
        while not self.stop.is_set() and time.time() < budget_end:
            t0 = time.time()
            n += 1
            err = None
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.router_port, timeout=5)
                c.request("GET", "/checkout", headers={"x-user-id": f"user-{n % 300}"})
                r = c.getresponse()
                body = r.read()
                c.close()
                if r.status != 200:
                    canary = False
                    if r.status == 500:
                        try:
                            b = json.loads(body)
                            canary = b.get("ok") is False and b.get("version") in self.bad_versions
                        except ValueError:
                            pass
                    if canary:
                        with self.lock:
                            self.canary_errors += 1
                    else:
                        err = f"{r.status} {body[:120]!r}"
            except (OSError, http.client.HTTPException) as e:
                err = f"{type(e).__name__}: {e}"
            with self.lock:
                self.requests += 1
                if err:
                    self.failed += 1
                    self.failures.append((time.strftime("%H:%M:%S"), err))
            time.sleep(max(0.0, 0.025 - (time.time() - t0)))

    # ---------- processes left behind ----------
    def scan(self):
        """(job processes, instance processes) of this chaos run that are alive:
        [(pid, run_id | instance_id, cmdline)]."""
        jobs, insts = [], []
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            pid = int(name)
            try:
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                        continue
                with open(f"/proc/{pid}/environ", "rb") as f:
                    env = dict(
                        kv.split(b"=", 1) for kv in f.read().split(b"\0") if b"=" in kv
                    )
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
                cwd = os.readlink(f"/proc/{pid}/cwd")
            except (OSError, IndexError):
                continue
            inst = env.get(b"ANDON_INSTANCE", b"").decode(errors="replace")
            if b"ANDON_RUN_ID" in env:
                if inst == self.data:
                    jobs.append((pid, env[b"ANDON_RUN_ID"].decode(), cmd))
            elif inst and cwd.startswith(self.root):
                insts.append((pid, inst, cmd))
        return jobs, insts

    def leftovers(self):
        """What is still unfinished or alive without a reason, after a restart."""
        problems = []
        status, runs = self.api("GET", f"/api/v1/projects/{PROJECT}/runs?limit=1000")
        if status != 200:
            return [f"runs answered {status}"], 1
        for r in runs:
            if r.get("status") in ("queued", "running"):
                problems.append(f"run {r['id']} {r['status']}")
        status, deploys = self.api("GET", f"/api/v1/projects/{PROJECT}/deploys")
        if status != 200:
            return [f"deploys answered {status}"], 1
        for d in deploys:
            if not self.finished(d):
                problems.append(f"deploy {d.get('id')} {d.get('phase')}")
        stuck = len(problems)
        status, envs = self.api("GET", f"/api/v1/projects/{PROJECT}/environments")
        if status != 200:
            return [f"environments answered {status}"], stuck
        live = {i.get("id") for e in envs for i in e.get("instances", [])}
        jobs, insts = self.scan()
        for pid, run_id, cmd in jobs:
            problems.append(f"orphan job process {pid} of run {run_id}: {cmd[:80]}")
        for pid, inst, cmd in insts:
            if inst not in live:
                problems.append(f"orphan instance process {pid} ({inst}): {cmd[:80]}")
        return problems, stuck

    def settle(self):
        """Waits (bounded) until nothing is in flight or left behind; returns
        (stuck, orphans) counted at the deadline."""
        deadline = time.time() + self.args.settle
        while True:
            problems, stuck = self.leftovers()
            if not problems:
                return 0, 0
            if time.time() > deadline:
                for p in problems:
                    log(f"LEFT BEHIND: {p}")
                return stuck, len(problems) - stuck
            time.sleep(0.5)

    # ---------- the test ----------
    def release(self, version, error_rate):
        """A whole release without faults; returns (run seconds, deploy seconds)."""
        self.commit(version, error_rate)
        t0 = time.time()
        status, run = self.api("POST", f"/api/v1/projects/{PROJECT}/runs", {})
        if status is None or status >= 300:
            raise SystemExit(f"chaos: trigger answered {status} {run}")
        # The orphan detector must see a run's job processes, or it proves nothing.
        seen_jobs = 0
        while self.run_status(run["id"]) in (None, "queued", "running") and time.time() - t0 < 120:
            seen_jobs = max(seen_jobs, len(self.scan()[0]))
            time.sleep(0.2)
        if seen_jobs == 0:
            raise SystemExit("chaos: no job process (ANDON_RUN_ID) seen during a run: the orphan check is blind")
        if self.wait_run(run["id"]) != "passed":
            raise SystemExit(f"chaos: warm-up run {run['id']} did not pass; see {self.root}")
        t1 = time.time()
        d = self.deploy(run["id"])
        if d is None:
            raise SystemExit("chaos: the warm-up deploy was refused")
        outcome = self.wait_deploy(d)
        if outcome != "succeeded":
            raise SystemExit(f"chaos: warm-up deploy {d} ended {outcome}; see {self.root}")
        if not self.scan()[1]:
            raise SystemExit("chaos: no instance process (ANDON_INSTANCE) seen: the orphan check is blind")
        return t1 - t0, time.time() - t1

    def iteration(self, i, horizon, rng):
        bad = i % 4 == 3
        version = f"v{i + 3}"
        if bad:
            self.bad_versions.add(version)
        self.commit(version, 0.3 if bad else 0)
        kill_at = time.time() + rng.uniform(0.1, horizon)
        status, run = self.api("POST", f"/api/v1/projects/{PROJECT}/runs", {})
        if status is None or status >= 300:
            raise SystemExit(f"chaos: trigger answered {status} {run}")
        run_id, deploy_id, phase = run["id"], None, "run"
        while time.time() < kill_at:
            if deploy_id is None:
                s = self.run_status(run_id)
                if s == "passed":
                    deploy_id = self.deploy(run_id)
                    phase = "canary" if deploy_id else "idle"
                elif s not in (None, "queued", "running"):
                    phase = "idle"
            elif phase == "canary" and isinstance(self.deploy_phase(deploy_id), dict):
                phase = "idle"
            time.sleep(0.1)
        # Everything read now must survive the kill.
        self.remember_events()
        self.server.send_signal(signal.SIGKILL)
        self.server.wait()
        self.kill_phases[phase] = self.kill_phases.get(phase, 0) + 1
        t_kill = time.time()
        self.start_server()
        t_up = time.time()
        stuck, orphans = self.settle()
        lost = self.remember_events()
        self.stuck += stuck
        self.orphans += orphans
        with self.lock:
            failed = self.failed
        log(f"iteration {i + 1}: killed during {phase} (run {run_id}, deploy {deploy_id}, "
            f"{'bad' if bad else 'good'} {version}); up again in {t_up - t_kill:.1f}s, "
            f"settled in {time.time() - t_up:.1f}s; lost {lost} stuck {stuck} orphans {orphans} "
            f"failed requests so far {failed}")

    def main(self):
        a = self.args
        rng = random.Random(a.seed)
        log(f"chaos in {self.root}: {a.iterations} iterations, seed {a.seed}")
        os.makedirs(self.repo)
        self.git("init", "-q", "-b", "main")
        with open(os.path.join(self.repo, "andon.yaml"), "w") as f:
            f.write(ANDON_YAML.format(bin=self.bin))
        self.commit("v1", 0)
        self.start_router()
        self.start_server()
        status, added = self.api("POST", "/api/v1/projects",
                                 {"name": PROJECT, "repo": self.repo, "poll": "0s"})
        if status is None or status >= 300:
            raise SystemExit(f"chaos: adding the project answered {status} {added}")
        if self.wait_run(added["run_id"]) != "passed":
            raise SystemExit(f"chaos: the first run did not pass; see {self.root}")
        d = self.deploy(added["run_id"])
        if d is None or self.wait_deploy(d) != "succeeded":
            raise SystemExit(f"chaos: the first release failed; see {self.root}")
        traffic = threading.Thread(target=self.traffic, daemon=True)
        traffic.start()
        run_s, deploy_s = self.release("v2", 0)
        horizon = 1.2 * (run_s + deploy_s)
        log(f"warm-up canary release: run {run_s:.1f}s, canary {deploy_s:.1f}s; "
            f"kills land uniformly in the first {horizon:.1f}s of each iteration")
        self.remember_events()
        started = time.time()
        for i in range(a.iterations):
            self.iteration(i, horizon, rng)
        self.stop.set()
        traffic.join(timeout=10)
        elapsed = time.time() - started
        with self.lock:
            for when, err in self.failures[:20]:
                log(f"failed request at {when}: {err}")
            log(f"{self.requests} requests through the router, {self.failed} failed, "
                f"{self.canary_errors} deliberate 500s of bad canaries")
        log(f"kills by moment: {self.kill_phases}; {len(self.seen)} events checked; "
            f"{elapsed:.0f}s for {a.iterations} iterations")
        ok = not (self.lost or self.stuck or self.orphans or self.failed)
        self.cleanup(keep=a.keep or not ok)
        print(f"chaos iterations: {a.iterations} lost_events: {len(self.lost)} stuck: {self.stuck} "
              f"orphans: {self.orphans} failed_requests: {self.failed}", flush=True)
        return 0 if ok else 1

    def cleanup(self, keep):
        self.stop.set()
        if self.server and self.server.poll() is None:
            self.server.terminate()
            try:
                self.server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()
        # Instances (and any job processes) outlive the server by design.
        jobs, insts = self.scan()
        for pid, _, _ in jobs + insts:
            try:
                os.kill(pid, signal.SIGTERM)
            except OSError:
                pass
        if self.router and self.router.poll() is None:
            self.router.terminate()
            try:
                self.router.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.router.kill()
        if keep:
            log(f"kept {self.root} (logs: server.log, router.log)")
        else:
            shutil.rmtree(self.root, ignore_errors=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--andon", required=True)
    p.add_argument("--iterations", type=int, default=50)
    p.add_argument("--seed", type=int, default=int(time.time()))
    p.add_argument("--settle", type=float, default=SETTLE_S)
    p.add_argument("--keep", action="store_true")
    c = Chaos(p.parse_args())
    try:
        code = c.main()
    except BaseException:
        c.cleanup(keep=True)
        raise
    sys.exit(code)


if __name__ == "__main__":
    main()
