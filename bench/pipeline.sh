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
# target/), or uses $ANDON_BIN. Works under $TMPDIR (default /tmp; TMPDIR=/dev/shm takes the
# disk out of the figures). Everything it starts and creates is removed on exit.
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
WORK="$(mktemp -d "${TMPDIR:-/tmp}/andon-pipeline-bench.XXXXXX")"
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
ANDON="$(realpath "$ANDON")"
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@localhost GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@localhost
export NO_COLOR=1

BENCH_START=$(now)
log "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"

# ---------------------------------------------------------------- (a) DAG vs make
DAG="$WORK/dag"
python3 "$HERE/gen_dag.py" "$DAG" --jobs 200 --width 8
git -C "$DAG" init -q -b main
git -C "$DAG" add andon.yaml Makefile
git -C "$DAG" commit -q -m "200 trivial jobs, width 8"
"$ANDON" check --file "$DAG/andon.yaml" >&2

run_andon() { (cd "$DAG" && "$ANDON" run -j 8 >/dev/null 2>"$WORK/andon.err") || { cat "$WORK/andon.err" >&2; return 1; }; }
run_andon_json() { (cd "$DAG" && "$ANDON" run -j 8 --json >"$WORK/andon.json" 2>"$WORK/andon.err") || { cat "$WORK/andon.err" >&2; return 1; }; }
run_make() { make -s -j8 -C "$DAG" -f Makefile all >/dev/null; }
run_checkout() { # what `andon run` does before its first job: a disposable clone of HEAD
    rm -rf "$WORK/co"
    git clone -q --shared --no-checkout -- "$DAG" "$WORK/co"
    git -C "$WORK/co" -c advice.detachedHead=false checkout -q --detach "$(git -C "$DAG" rev-parse HEAD)"
    rm -rf "$WORK/co"
}
time_ms() { local t0 t1; t0=$(now); "$@"; t1=$(now); awk -v d=$((t1 - t0)) 'BEGIN {printf "%.1f\n", d / 1e6}'; }

log "warm-up: one run of each"
run_andon
run_make
for f in andon make json json_pipeline checkout; do : >"$WORK/a.$f"; done
for r in $(seq "$ROUNDS"); do
    a=$(time_ms run_andon)
    m=$(time_ms run_make)
    j=$(time_ms run_andon_json)
    p=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["duration_ms"])' "$WORK/andon.json")
    c=$(time_ms run_checkout)
    echo "$a" >>"$WORK/a.andon"; echo "$m" >>"$WORK/a.make"; echo "$j" >>"$WORK/a.json"
    echo "$p" >>"$WORK/a.json_pipeline"; echo "$c" >>"$WORK/a.checkout"
    log "round $r/$ROUNDS: andon run ${a} ms, make ${m} ms, andon run --json ${j} ms (pipeline ${p} ms), checkout+rm alone ${c} ms"
done
A_MS=$(median <"$WORK/a.andon")
M_MS=$(median <"$WORK/a.make")
J_MS=$(median <"$WORK/a.json")
P_MS=$(median <"$WORK/a.json_pipeline")
C_MS=$(median <"$WORK/a.checkout")
ratio() { awk -v a="$1" -v m="$2" 'BEGIN {printf "%.2f", a / m}'; }
RATIO=$(ratio "$A_MS" "$M_MS")
echo "(a) 200 jobs, width 8, ${ROUNDS} rounds, medians (ms):"
echo "    andon run -j 8 (wall)                       ${A_MS}"
echo "    make -j8 (wall)                             ${M_MS}"
echo "    andon run -j 8 --json (wall)                ${J_MS}"
echo "      of which the pipeline (its duration_ms)   ${P_MS}"
echo "      so outside the pipeline (start, git, checkout, cleanup)  $(awk -v a="$J_MS" -v p="$P_MS" 'BEGIN {printf "%.1f", a - p}')"
echo "    checkout + removal alone (git clone --shared + checkout + rm -rf)  ${C_MS}"
echo "    ratios to make: andon run $RATIO; without checkout $(ratio "$(awk -v a="$A_MS" -v c="$C_MS" 'BEGIN {print a - c}')" "$M_MS"); pipeline only $(ratio "$P_MS" "$M_MS")"

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

log "benchmarks took $(( ($(now) - BENCH_START) / 1000000000 )) s (build not counted); load average now $(cut -d' ' -f1-3 /proc/loadavg)"
echo "pipeline-vs-make ratio: $RATIO"
echo "webhook-to-first-job p50_ms: $P50 p99_ms: $P99"
