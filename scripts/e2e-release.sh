#!/usr/bin/env bash
# End-to-end release through a real router on 127.0.0.1 (release builds):
# the sample service v1, a blue/green switch to v2 under load, then a bad
# canary v3 (ERROR_RATE 0.05 against a 0.01 baseline) that the judge must
# roll back (crates/andon-deploy/examples/release_e2e.rs).
#
#   bash scripts/e2e-release.sh            # 50,000 requests
#   bash scripts/e2e-release.sh --short    # 5,000 requests, for CI
#
# The last line is
#   release-e2e failed_requests: N of M, bad_canary: rolled_back|not_rolled_back, leftover_instances: K
# A failed request is a connection error, a 5xx made by the router itself, or
# a 5xx from a non-canary version other than the service's deliberate
# ERROR_RATE answers. Exit status 0 only when N = 0, rolled back and K = 0.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
# --short (CI) uses the debug build the test suite already made; the full
# run measures release binaries. E2E_PROFILE overrides either.
profile="${E2E_PROFILE:-release}"
case " $* " in *" --short "*) profile="${E2E_PROFILE:-debug}" ;; esac
if [ "$profile" = release ]; then flag=--release; dir=release; else flag=; dir=debug; fi
cargo build $flag -q -p sample-service
cargo build $flag -q -p andon-deploy --example release_e2e
exec "$CARGO_TARGET_DIR/$dir/examples/release_e2e" \
    --sample-service "$CARGO_TARGET_DIR/$dir/sample-service" "$@"
