#!/usr/bin/env bash
# Feature flags, end to end:
#   1. evaluation cost in-process (bench/flags_eval.sh, criterion);
#   2. OFREP single-flag evaluation over HTTP with keep-alive: a release
#      `andon server` (temp data dir, ANDON_ADMIN_TOKEN, no router) loaded by
#      `wrk` from a separate process on 127.0.0.1, POSTing one context with
#      an SDK token (viewer, scoped to production); reports req/s and p99;
#   3. fan-out: N SDK-like clients on the change stream (SSE), a flag change,
#      time until each client has the notification (bench/flags_fanout.py).
#
#   bash bench/flags.sh                     # criterion defaults, 10 s of load
#   FLAGS_BENCH_SECONDS=20 FLAGS_BENCH_CONNECTIONS=64 FLAGS_SSE_CLIENTS=1000 bash bench/flags.sh
#   FLAGS_SKIP_EVAL=1 bash bench/flags.sh   # HTTP parts only (eval figures "n/a")
#   extra args go to criterion (see bench/flags_eval.sh)
#
# Goal: >= 50,000 OFREP req/s on 2 cores. The machine's 2 cores are shared
# by wrk and the server (and by anything else running): the figure is for
# the whole box, wall clock.
#
# The last line is the summary:
#   flags eval_ns_bool: A eval_ns_rules: B eval_ns_rollout: C ofrep_rps: D
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET="${CARGO_TARGET_DIR:-$PWD/target}"
case "$TARGET" in /*) ;; *) TARGET="$PWD/$TARGET" ;; esac
export CARGO_TARGET_DIR="$TARGET"
SECONDS_LOAD="${FLAGS_BENCH_SECONDS:-10}"
CONNS="${FLAGS_BENCH_CONNECTIONS:-64}"
SSE_CLIENTS="${FLAGS_SSE_CLIENTS:-1000}"
ADMIN="bench-admin-$$"

if [ -n "${FLAGS_SKIP_EVAL:-}" ]; then
    eval_line="flags eval_ns_bool: n/a eval_ns_rules: n/a eval_ns_rollout: n/a"
else
    eval_line="$(bash bench/flags_eval.sh "$@" | tail -n 1)"
fi

if ! command -v wrk >/dev/null; then
    echo "installing wrk" >&2
    apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
fi

if [ -z "${ANDON_BIN:-}" ]; then
    cargo build --release -q -p andon-cli >&2
    ANDON_BIN="$TARGET/release/andon"
fi

work="$(mktemp -d)"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

# The fan-out holds a thousand connections on each side.
ulimit -n 65536 2>/dev/null || ulimit -n 8192 2>/dev/null || true
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
ANDON_ADMIN_TOKEN="$ADMIN" ANDON_LOG=warn "$ANDON_BIN" server --data "$work/data" \
    --listen "127.0.0.1:$port" --no-router >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 300); do
    curl -fs "$base/healthz" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -fs "$base/healthz" >/dev/null || { cat "$work/server.log" >&2; echo "server did not start" >&2; exit 1; }

api() { curl -fsS -X "$1" "$base$2" -H "Authorization: Bearer $ADMIN" -H 'Content-Type: application/json' -d "$3"; }
api PUT /api/v1/flags/checkout '{"reason": "bench", "flag": {"environments": {"production": {"enabled": true, "rules": [
    {"conditions": [{"attribute": "country", "operator": "in", "values": ["se", "dk"]}], "serve": "off"},
    {"rollout": {"percentage": 50}, "serve": "on"}]}}}}' >/dev/null
token="$(api POST /api/v1/tokens '{"name": "bench-sdk", "role": "viewer", "environment": "production"}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')"

body='{"context":{"targetingKey":"user-42","country":"no","plan":"pro"}}'
answer="$(curl -fsS -X POST "$base/ofrep/v1/evaluate/flags/checkout" -H "Authorization: Bearer $token" -d "$body")"
echo "sample answer: $answer" >&2

cat >"$work/post.lua" <<EOF
wrk.method = "POST"
wrk.body = '$body'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $token"
EOF
# Warm up, then measure.
wrk -t1 -c"$CONNS" -d2s -s "$work/post.lua" "$base/ofrep/v1/evaluate/flags/checkout" >/dev/null
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
server_before="$(cpu_ticks "$server_pid")"
/usr/bin/time -f "%U %S" -o "$work/wrk.cpu" wrk -t1 -c"$CONNS" -d"${SECONDS_LOAD}s" --latency -s "$work/post.lua" \
    "$base/ofrep/v1/evaluate/flags/checkout" >"$work/wrk.txt"
server_after="$(cpu_ticks "$server_pid")"
cat "$work/wrk.txt" >&2
if grep -q "Non-2xx" "$work/wrk.txt"; then echo "some answers were not 200" >&2; exit 1; fi
rps="$(awk '/^Requests\/sec:/ {printf "%d", $2}' "$work/wrk.txt")"
p99="$(awk '$1 == "99%" {print $2}' "$work/wrk.txt")"
echo "ofrep single-flag: ${rps} req/s, p99 ${p99} (${CONNS} connections, ${SECONDS_LOAD}s, load: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
# CPU time per request, server and load generator: on a machine shared
# with other work the wall-clock rate understates what two idle cores do.
requests="$(awk '/requests in/ {print $1}' "$work/wrk.txt")"
python3 - "$server_before" "$server_after" "$(cat "$work/wrk.cpu")" "$requests" "$(getconf CLK_TCK)" >&2 <<'PY'
import sys
before, after, wrk_user, wrk_sys, n, hz = sys.argv[1], sys.argv[2], *sys.argv[3].split(), sys.argv[4], sys.argv[5]
server_us = (int(after) - int(before)) / int(hz) * 1e6 / int(n)
wrk_us = (float(wrk_user) + float(wrk_sys)) * 1e6 / int(n)
print(f"cpu per request: server {server_us:.1f} us, wrk {wrk_us:.1f} us; "
      f"2 idle cores would do about {2e6 / (server_us + wrk_us):,.0f} req/s with wrk beside the server")
PY

if [ "$SSE_CLIENTS" -gt 0 ]; then
    python3 bench/flags_fanout.py --port "$port" --token "$ADMIN" --clients "$SSE_CLIENTS" --rounds 5 >&2
fi

echo "$eval_line ofrep_rps: $rps"
