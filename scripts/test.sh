#!/usr/bin/env bash
# Runs every test: installs what is missing, starts a private PostgreSQL for
# the store suite, runs lints and the workspace tests, then the short e2e checks.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

export CARGO_TERM_COLOR=never
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings

# A private PostgreSQL cluster on a free port, for the store's PostgreSQL suite.
if url=$(bash scripts/pg-test-cluster.sh start 2>/dev/null); then
  export ANDON_TEST_PG="$url"
  trap 'bash scripts/pg-test-cluster.sh stop >/dev/null 2>&1 || true' EXIT
else
  echo "warning: could not start PostgreSQL; its store tests will say they were skipped" >&2
fi

cargo test --workspace --no-fail-fast

# Short end-to-end checks on real processes (full versions run on demand).
bash scripts/e2e-release.sh --short
"${CARGO_TARGET_DIR:-target}/debug/andon" demo --port 17170
bash scripts/browser-test.sh
# Beyond one machine: PostgreSQL, two servers, two agents, HAProxy; leader
# and agent killed mid-work.
bash scripts/e2e-scale.sh --short
# Hardening: kill -9 during runs and canaries, every endpoint x role, the
# offline dependency policy (advisories need GitHub, unreachable here).
bash scripts/chaos.sh --short
bash scripts/authz-matrix.sh
bash scripts/deny.sh
