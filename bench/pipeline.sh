#!/usr/bin/env bash
# Pipeline benchmarks (a script, not a timed test):
#
#   bash bench/pipeline.sh           # full: 5 rounds of (a), 100 webhooks for (b)
#   bash bench/pipeline.sh --short   # CI: 2 rounds, 20 webhooks
#
# (a) 200 trivial jobs (`true`) in a layered DAG of width 8 (25 layers; each job
#     needs 1-2 jobs of the layer before), run by `andon run -j 8` and, as the
#     same DAG in a Makefile, by `make -j8`. Alternating rounds; the medians of the
#     wall times give ratio = andon / make. Goal <= 1.2. `andon run` includes its
#     clean checkout of HEAD; the median cost of that checkout alone is also
#     measured and subtracted for a checkout-free figure.
# (b) a real `andon server` (release build, fresh data dir, free port, poll off):
#     a new commit, a signed GitHub push webhook, and the time from just before
#     sending to the job's own `date +%s%N`; median and p99 over the triggers.
#     Goal <= 50 ms. The event log's timestamps split each latency into stages.
#
# Builds `andon` with `cargo build --release -p andon-cli` (CARGO_TARGET_DIR, default
# target/), or uses $ANDON_BIN. Everything it starts and creates is removed on exit.
# The last two lines printed are, exactly:
#   pipeline-vs-make ratio: R
#   webhook-to-first-job p50_ms: X p99_ms: Y
set -euo pipefail

ROUNDS=5
TRIGGERS=100
GIT_REPS=20
if [ "${1:-}" = "--short" ]; then
    ROUNDS=2
    TRIGGERS=20
    GIT_REPS=5
elif [ -n "${1:-}" ]; then
    echo "usage: bash bench/pipeline.sh [--short]" >&2
    exit 2
fi
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
HERE="$ROOT/bench/pipeline"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
WORK="$(mktemp -d /tmp/andon-pipeline-bench.XXXXXX)"
PIDS=()

cleanup() {
    for pid in "${PIDS[@]}"; do
        kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "== $*" >&2; }
now() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) exit 1; m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.1f\n", m}'; }

command -v make >/dev/null || { log "make is missing: apt-get install -y make"; exit 1; }
command -v python3 >/dev/null || { log "python3 is missing"; exit 1; }
if [ -n "${ANDON_BIN:-}" ]; then
    ANDON="$ANDON_BIN"
else
    log "building andon (release)"
    (cd "$ROOT" && cargo build --release --quiet -p andon-cli)
    ANDON="$TARGET/release/andon"
fi
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@localhost GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@localhost
export NO_COLOR=1

log "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"

# ---------------------------------------------------------------- (a) DAG vs make
DAG="$WORK/dag"
python3 "$HERE/gen_dag.py" "$DAG" --jobs 200 --width 8
git -C "$DAG" init -q -b main
git -C "$DAG" add andon.yaml Makefile
git -C "$DAG" commit -q -m "200 trivial jobs, width 8"
"$ANDON" check --file "$DAG/andon.yaml" >&2

run_andon() { (cd "$DAG" && "$ANDON" run -j 8 >/dev/null); }
run_make() { make -s -j8 -C "$DAG" -f Makefile all >/dev/null; }
run_checkout() { # what `andon run` does before its first job: a clone of HEAD
    rm -rf "$WORK/co"
    git clone -q --shared --no-checkout -- "$DAG" "$WORK/co"
    git -C "$WORK/co" -c advice.detachedHead=false checkout -q --detach "$(git -C "$DAG" rev-parse HEAD)"
}
time_ms() { local t0 t1; t0=$(now); "$@"; t1=$(now); echo $(((t1 - t0) / 1000)) | awk '{printf "%.1f\n", $1/1000}'; }

log "warm-up: one run of each"
run_andon
run_make
: >"$WORK/a.andon"; : >"$WORK/a.make"; : >"$WORK/a.checkout"
for r in $(seq "$ROUNDS"); do
    a=$(time_ms run_andon); m=$(time_ms run_make); c=$(time_ms run_checkout)
    echo "$a" >>"$WORK/a.andon"; echo "$m" >>"$WORK/a.make"; echo "$c" >>"$WORK/a.checkout"
    log "round $r/$ROUNDS: andon run ${a} ms, make ${m} ms, checkout alone ${c} ms"
done
A_MS=$(median <"$WORK/a.andon")
M_MS=$(median <"$WORK/a.make")
C_MS=$(median <"$WORK/a.checkout")
RATIO=$(awk -v a="$A_MS" -v m="$M_MS" 'BEGIN {printf "%.2f", a / m}')
RATIO_NOCO=$(awk -v a="$A_MS" -v m="$M_MS" -v c="$C_MS" 'BEGIN {printf "%.2f", (a - c) / m}')
echo "(a) 200 jobs, width 8, ${ROUNDS} rounds: andon run -j 8 median ${A_MS} ms; make -j8 median ${M_MS} ms"
echo "    checkout alone median ${C_MS} ms; andon without checkout / make: ${RATIO_NOCO}"

# ---------------------------------------------------------------- (b) webhook latency
log "standalone cost of the server's steps (median of $GIT_REPS)"
bash "$HERE/gitcost.sh" "$WORK/gitcost" "$GIT_REPS" | sed 's/^/    step /'
HOOK="$WORK/hook"
mkdir -p "$HOOK"
# webhook.py starts and stops the server itself (its own session); it runs in the
# background only so the trap can stop it on Ctrl-C.
python3 "$HERE/webhook.py" --andon "$ANDON" --work "$HOOK" --triggers "$TRIGGERS" \
    --raw "$WORK/hook.jsonl" >"$WORK/hook.json" &
PIDS+=($!)
wait "${PIDS[-1]}"
python3 - "$WORK/hook.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
names = {
    "latency_ms": "webhook sent -> job process running (total)",
    "ack_ms": "webhook sent -> 202 received",
    "to_queued_ms": "  sent -> run_queued (fetch, rev-parse, git log, append)",
    "queued_to_started_ms": "  run_queued -> run_started (checkout, config, secrets)",
    "started_to_job_event_ms": "  run_started -> job_started (spawn, append)",
    "job_event_to_process_ms": "  job_started -> job's `date` (ms clock, may be < 0)",
}
print(f"(b) {s['triggers']} webhooks, one at a time (ms: p50 / p99 / min / max):")
for k, label in names.items():
    v = s.get(k)
    if v:
        print(f"    {label:58s} {v['p50']:8.1f} {v['p99']:8.1f} {v['min']:8.1f} {v['max']:8.1f}")
PY
P50=$(python3 -c 'import json,sys; print("%.1f" % json.load(open(sys.argv[1]))["latency_ms"]["p50"])' "$WORK/hook.json")
P99=$(python3 -c 'import json,sys; print("%.1f" % json.load(open(sys.argv[1]))["latency_ms"]["p99"])' "$WORK/hook.json")

echo "pipeline-vs-make ratio: $RATIO"
echo "webhook-to-first-job p50_ms: $P50 p99_ms: $P99"
