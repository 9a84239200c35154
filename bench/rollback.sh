#!/usr/bin/env bash
# Rollback latency: from the judge's fail verdict to 100% of requests served
# by the stable version, seen by a client hammering the router and reading
# `x-andon-served-by` (crates/andon-deploy/examples/rollback_bench.rs).
#
#   bash bench/rollback.sh            # ROUNDS=25 bad canaries, each rolled back
#
# Prints each round on stderr and, as the last line:
#   rollback p50_ms: X p99_ms: Y
# Goal: p99 <= 1000 ms. Everything it starts is stopped when it ends.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release -q -p sample-service
cargo build --release -q -p andon-deploy --example rollback_bench
exec "$CARGO_TARGET_DIR/release/examples/rollback_bench" \
    --sample-service "$CARGO_TARGET_DIR/release/sample-service"
