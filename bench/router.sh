#!/usr/bin/env bash
# Andon router vs nginx: same two backends, same 90/10 split, same wrk load, on 127.0.0.1.
#
#   bash bench/router.sh            # DURATION=10s CONNECTIONS=64 THREADS=2 ROUNDS=1
#
# Prints wrk's figures for each proxy and, as the last line:
#   router-vs-nginx throughput_ratio: R p99_ratio: Q
# (R = andon req/s / nginx req/s, Q = andon p99 / nginx p99). Goal: R >= 0.9, Q <= 1.2.
# With ROUNDS > 1 each proxy is measured ROUNDS times, alternating, and the medians are used.
# Everything it starts is stopped on exit.
set -euo pipefail

DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-64}"
THREADS="${THREADS:-2}"
ROUNDS="${ROUNDS:-1}"
WARMUP="${WARMUP:-2s}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
WORK="$(mktemp -d /tmp/andon-router-bench.XXXXXX)"
chmod 755 "$WORK"
PIDS=()

cleanup() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

log() { echo "== $*" >&2; }

install_tools() {
    local missing=()
    command -v wrk >/dev/null || missing+=(wrk)
    command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
    [ ${#missing[@]} -eq 0 ] && return
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    # Debian 12's nginx-light is a transitional package that may fail to configure; the full
    # nginx package has the same core.
    if ! apt-get install -y -qq "${missing[@]/nginx-light/nginx}" >/dev/null; then
        apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    # The package starts a system nginx on port 80; this bench runs its own.
    if command -v service >/dev/null; then service nginx stop >/dev/null 2>&1 || true; fi
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_http() { # URL [curl args...]: until it answers 200, at most 10s
    local url="$1"; shift
    for _ in $(seq 1 100); do
        if [ "$(curl -s -o /dev/null -w '%{http_code}' "$@" "$url" 2>/dev/null)" = 200 ]; then return 0; fi
        sleep 0.1
    done
    echo "no answer from $url" >&2
    return 1
}

# wrk prints latency as 850.00us, 1.23ms, 1.01s; normalise to milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/) { sub(/us$/, "", v); printf "%.4f", v / 1000 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.4f", v }
        else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.4f", v * 1000 }
        else { printf "%.4f", v } }'
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

# CPU time (utime + stime, in clock ticks) used so far by the given processes and their children
# processes (nginx workers). Less sensitive to other load on the machine than req/s.
cpu_ticks() {
    local total=0 pid f
    for pid in "$@" $(ps -o pid= --ppid "$*" 2>/dev/null); do
        read -r -a f <"/proc/$pid/stat" || continue
        total=$((total + f[13] + f[14]))
    done
    echo "$total"
}

run_wrk() { # NAME URL PID -> appends "rps p50 p99 cpu_us_per_request" to $WORK/NAME.results
    local name="$1" url="$2" pid="$3" out="$WORK/$1.wrk" before after requests
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" "$url" >/dev/null
    before="$(cpu_ticks "$pid")"
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$url" >"$out"
    after="$(cpu_ticks "$pid")"
    requests="$(awk '/requests in/ {print $1}' "$out")"
    echo "--- $name ($url)" >&2
    sed -n '/Thread Stats/,/Transfer/p' "$out" >&2
    local rps p50 p99 errors
    rps="$(awk '/^Requests\/sec:/ {print $2}' "$out")"
    p50="$(to_ms "$(awk '$1 == "50%" {print $2}' "$out")")"
    p99="$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")"
    errors="$(awk '/Non-2xx|Socket errors/' "$out")"
    [ -n "$errors" ] && echo "$name: $errors" >&2
    local cpu
    cpu="$(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v n="$requests" \
        'BEGIN { printf "%.1f", t / hz * 1e6 / (n > 0 ? n : 1) }')"
    echo "$name: ${cpu}us CPU per request (proxy processes only)" >&2
    echo "$rps $p50 $p99 $cpu" >>"$WORK/$name.results"
}

install_tools
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"

log "building release binaries into $TARGET"
(cd "$ROOT" && CARGO_TARGET_DIR="$TARGET" cargo build -q --release -p sample-service \
    && CARGO_TARGET_DIR="$TARGET" cargo build -q --release -p andon-router --example andon-router)
SAMPLE="$TARGET/release/sample-service"
ROUTER="$TARGET/release/examples/andon-router"

B1="$(free_port)"; B2="$(free_port)"; RP="$(free_port)"; RA="$(free_port)"; NP="$(free_port)"
log "backends on $B1 (stable, weight 90) and $B2 (canary, weight 10)"
PORT="$B1" VERSION=stable WORKERS=1 "$SAMPLE" >"$WORK/b1.log" 2>&1 & PIDS+=($!)
PORT="$B2" VERSION=canary WORKERS=1 "$SAMPLE" >"$WORK/b2.log" 2>&1 & PIDS+=($!)
wait_http "http://127.0.0.1:$B1/healthz"
wait_http "http://127.0.0.1:$B2/healthz"

log "andon router on $RP (admin $RA)"
"$ROUTER" --data "$WORK/router-data" --listen "127.0.0.1:$RP" --admin "127.0.0.1:$RA" \
    --admin-token bench >"$WORK/router.log" 2>&1 & PIDS+=($!)
ROUTER_PID=$!
wait_http "http://127.0.0.1:$RA/healthz" -H 'authorization: Bearer bench'
curl -sf -X PUT -H 'authorization: Bearer bench' "http://127.0.0.1:$RA/routes" -d @- >/dev/null <<EOF
{"generation": 1,
 "services": {"bench/production": {
   "versions": [
     {"name": "stable", "version": "v1", "weight": 90, "endpoints": ["127.0.0.1:$B1"]},
     {"name": "canary", "version": "v2", "weight": 10, "endpoints": ["127.0.0.1:$B2"]}]}},
 "routes": [{"host": null, "path_prefix": "/", "service": "bench/production"}]}
EOF
wait_http "http://127.0.0.1:$RP/"

log "nginx on $NP"
mkdir -p "$WORK/nginx"
cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes 2;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    upstream backends {
        server 127.0.0.1:$B1 weight=9;
        server 127.0.0.1:$B2 weight=1;
        keepalive 256;
    }
    server {
        listen 127.0.0.1:$NP;
        location / {
            proxy_pass http://backends;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
        }
    }
}
EOF
"$NGINX" -p "$WORK/nginx" -e "$WORK/nginx/error.log" -c "$WORK/nginx/nginx.conf" & PIDS+=($!)
NGINX_PID=$!
wait_http "http://127.0.0.1:$NP/"

log "wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency, $ROUNDS round(s), nproc=$(nproc), load: $(cut -d' ' -f1-3 /proc/loadavg)"
for _ in $(seq 1 "$ROUNDS"); do
    run_wrk andon "http://127.0.0.1:$RP/" "$ROUTER_PID"
    run_wrk nginx "http://127.0.0.1:$NP/" "$NGINX_PID"
done

# Split check: the router's own counters.
curl -s -H 'authorization: Bearer bench' "http://127.0.0.1:$RA/stats" | python3 -c '
import json, sys
s = json.load(sys.stdin)["services"]["bench/production"]
total = max(sum(v["requests"] for v in s.values()), 1)
parts = ["%s %.1f%% (%d errors)" % (k, 100.0 * v["requests"] / total, v["errors"]) for k, v in sorted(s.items())]
print("andon split: " + ", ".join(parts), file=sys.stderr)' || true

col() { awk -v c="$2" '{print $c}' "$WORK/$1.results" | median; }
A_RPS="$(col andon 1)"; A_P50="$(col andon 2)"; A_P99="$(col andon 3)"
N_RPS="$(col nginx 1)"; N_P50="$(col nginx 2)"; N_P99="$(col nginx 3)"
echo "andon: ${A_RPS} req/s p50 ${A_P50}ms p99 ${A_P99}ms cpu/request $(col andon 4)us"
echo "nginx: ${N_RPS} req/s p50 ${N_P50}ms p99 ${N_P99}ms cpu/request $(col nginx 4)us"
awk -v ar="$A_RPS" -v nr="$N_RPS" -v ap="$A_P99" -v np="$N_P99" \
    'BEGIN { printf "router-vs-nginx throughput_ratio: %.2f p99_ratio: %.2f\n", ar / nr, ap / np }'
