#!/usr/bin/env bash
# Remote agents: how long a job waits between becoming ready and starting on
# an idle agent.
#
# Builds the release binary, starts `andon server` (temp data dir, no router)
# and one `andon agent` on 127.0.0.1, then triggers N runs one after the
# other of a one-job pipeline whose job has `runs_on`, each once the last
# ended (so the agent is idle, holding its long-poll lease request). From the
# event log: `job_queued` (the job is ready, waiting for an agent) to
# `job_started` (the agent downloaded the commit's source, unpacked it and
# started the job's process). Event times are the server's clock, in ms.
#
#   bash bench/agent.sh            # 100 runs
#   bash bench/agent.sh --short    # 20 runs
#   ANDON_BIN=path/to/andon bash bench/agent.sh   # skip the build
#
# Goal: p50 and p99 <= 200 ms (GoCD and Buildkite agents poll every 10-20 s).
# The last line is the summary:
#   agent queued-to-started p50_ms: X p99_ms: Y
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=100
for arg in "$@"; do
    case "$arg" in
        --short) RUNS=20 ;;
        *) echo "usage: bash bench/agent.sh [--short]" >&2; exit 2 ;;
    esac
done
TARGET="${CARGO_TARGET_DIR:-$PWD/target}"
case "$TARGET" in /*) ;; *) TARGET="$PWD/$TARGET" ;; esac
export CARGO_TARGET_DIR="$TARGET"
if [ -z "${ANDON_BIN:-}" ]; then
    cargo build --release -q -p andon-cli >&2
    ANDON_BIN="$TARGET/release/andon"
fi
ADMIN="bench-admin-$$"

work="$(mktemp -d)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

repo="$work/repo"
mkdir -p "$repo"
git -C "$repo" init -q -b main
cat > "$repo/andon.yaml" <<'YAML'
pipeline:
  stages:
    - name: test
      jobs:
        - name: hello
          runs_on: [bench]
          run: echo hello from the agent
YAML
git -C "$repo" add .
git -C "$repo" -c user.name=bench -c user.email=bench@example.com commit -q -m bench

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
ANDON_ADMIN_TOKEN="$ADMIN" ANDON_LOG=warn "$ANDON_BIN" server --data "$work/data" \
    --listen "127.0.0.1:$port" --no-router >"$work/server.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 300); do
    curl -fsS "$base/healthz" >/dev/null 2>&1 && break
    sleep 0.1
done
token="$(curl -fsS -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' \
    -d '{"name":"bench-agent","role":"developer"}' "$base/api/v1/tokens" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')"
ANDON_LOG=warn "$ANDON_BIN" agent --server "$base" --token "$token" --labels bench \
    --name bench-1 --work "$work/agent" >"$work/agent.log" 2>&1 &
pids+=($!)

python3 - "$base" "$ADMIN" "$repo" "$RUNS" <<'PY'
import json, sys, time, urllib.request

base, admin, repo, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

def call(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"Authorization": f"Bearer {admin}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"null")

def wait_run(run_id):
    deadline = time.time() + 60
    while True:
        run = call("GET", f"/api/v1/runs/{run_id}")
        if run["status"] not in ("queued", "running"):
            if run["status"] != "passed":
                sys.exit(f"run {run_id} {run['status']}: {run.get('reason')}")
            return
        if time.time() > deadline:
            sys.exit(f"run {run_id} did not end")
        time.sleep(0.01)

deadline = time.time() + 30
while not call("GET", "/api/v1/agents")["agents"]:
    if time.time() > deadline:
        sys.exit("the agent did not connect")
    time.sleep(0.05)
first = call("POST", "/api/v1/projects", {"name": "bench", "repo": repo, "poll": "0s"})["run_id"]
wait_run(first)  # warm-up, not measured
ids = []
for _ in range(runs):
    time.sleep(0.05)  # the agent is back on its long poll, idle
    run_id = call("POST", "/api/v1/projects/bench/runs", {})["id"]
    wait_run(run_id)
    ids.append(run_id)

queued, started, after = {}, {}, 0
while True:
    batch = call("GET", f"/api/v1/events?after={after}&limit=5000")
    if not batch:
        break
    after = batch[-1]["seq"]
    for e in batch:
        key = (e.get("run_id"), e.get("job"), e.get("attempt"))
        if e["type"] == "job_queued":
            queued[key] = e["at_ms"]
        elif e["type"] == "job_started" and e.get("executor", "").startswith("agent:"):
            started[key] = e["at_ms"]
wanted = set(ids)
lat = sorted(started[k] - queued[k] for k in queued if k[0] in wanted and k in started)
if len(lat) != runs:
    sys.exit(f"expected {runs} measured jobs, found {len(lat)}")
pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
print(f"runs: {runs} min_ms: {lat[0]} mean_ms: {sum(lat) / len(lat):.1f} max_ms: {lat[-1]}", file=sys.stderr)
print(f"agent queued-to-started p50_ms: {pick(0.50)} p99_ms: {pick(0.99)}")
PY
