#!/usr/bin/env bash
# Chaos test: kill -9 the server at random moments during pipeline runs and
# canary releases, restart it, and check that nothing was lost or left behind.
#
#   bash scripts/chaos.sh [--iterations N] [--short] [--seed S] [--keep]
#
# N defaults to 50; --short is 3 iterations on the debug build (for CI); the
# full run uses the release build (CHAOS_PROFILE=debug|release overrides).
# A separate `andon router` serves steady client traffic the whole time; the
# server releases through it (--router-admin). Every iteration commits a new
# version, triggers its pipeline (jobs of 1-3 s) and, once it passed, starts
# a canary release of it; the server is killed at a random moment of that,
# restarted, and must settle. Checked after each (scripts/chaos/chaos.py):
#   lost_events  events read through the API before the kill, missing or
#                changed (same seq, same content) afterwards
#   stuck        runs still queued/running or releases still in flight once
#                the restarted server had 60 s to settle
#   orphans      job processes (ANDON_RUN_ID) of a finished run, instances
#                (ANDON_INSTANCE) the server does not list, still alive
#   failed_requests  client requests through the router that failed
#                (connection error, timeout, 5xx) other than the 500s a
#                deliberately bad canary answers itself
# Last line: `chaos iterations: N lost_events: L stuck: S orphans: O failed_requests: F`;
# exit status 0 only when all four are 0.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
export GIT_ALLOW_PROTOCOL=file
export GIT_TERMINAL_PROMPT=0

iterations=50
profile="${CHAOS_PROFILE:-}"
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --iterations) iterations="$2"; shift 2 ;;
    --iterations=*) iterations="${1#*=}"; shift ;;
    --short) iterations=3; profile="${profile:-debug}"; shift ;;
    --seed|--settle) args+=("$1" "$2"); shift 2 ;;
    --keep) args+=("$1"); shift ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    *) echo "chaos: unknown argument $1" >&2; exit 2 ;;
  esac
done
profile="${profile:-release}"
if [ "$profile" = release ]; then
  cargo build --release -q -p andon-cli
else
  cargo build -q -p andon-cli
fi
exec python3 scripts/chaos/chaos.py --andon "$CARGO_TARGET_DIR/$profile/andon" \
  --iterations "$iterations" "${args[@]}"
