#!/usr/bin/env bash
# Andon beyond one machine, end to end, with the real programs on 127.0.0.1:
# a private PostgreSQL, two `andon server`s sharing it, two `andon agent`s,
# and HAProxy as the production traffic driver.
#
#   bash scripts/e2e-scale.sh            # release build
#   bash scripts/e2e-scale.sh --short    # debug build (what the tests built), for CI
#
# What it does (scripts/e2e-scale.py): an agent is killed with kill -9 while
# it runs a job (the job must finish on the other agent); the leading server
# is killed with kill -9 during a run (the other must take over, end the run
# and run it again); then a canary and a rollback through HAProxy under steady
# traffic. The last line is
#   scale-e2e lost_events: 0 duplicated_jobs: 0 failed_requests: 0 takeover_s: T
# and the exit status is 0 only when the three counts are 0 and every phase
# ended as it must.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
profile=release
case " $* " in *" --short "*) profile=debug ;; esac
if [ "$profile" = release ]; then
    cargo build --release -q -p andon-cli
else
    cargo build -q -p andon-cli
fi
bin="$CARGO_TARGET_DIR/$profile/andon"

for tool in haproxy python3 git; do
    command -v "$tool" >/dev/null || { echo "e2e-scale: $tool is missing (bash scripts/setup.sh)" >&2; exit 1; }
done

work="$(mktemp -d "${TMPDIR:-/tmp}/andon-scale.XXXXXX")"
chmod 755 "$work"
pg_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
export ANDON_PG_DIR="$work/pg" ANDON_PG_PORT="$pg_port"
cleanup() {
    bash scripts/pg-test-cluster.sh stop >/dev/null 2>&1 || true
    if [ -z "${ANDON_E2E_KEEP:-}" ]; then rm -rf "$work"; else echo "kept $work" >&2; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

pg_url="$(bash scripts/pg-test-cluster.sh start)"
python3 scripts/e2e-scale.py --andon "$bin" --pg "$pg_url" --work "$work" "$@"
