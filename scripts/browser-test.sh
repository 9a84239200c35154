#!/usr/bin/env bash
# Browser tests of the web dashboard: Debian's Chromium, headless, driven by
# playwright-core (never a downloaded browser) against a real `andon server`
# and `andon router` on 127.0.0.1. Screenshots of every main page go to
# target/ci-artifacts/screenshots/ (or $ANDON_ARTIFACTS/screenshots/): CI keeps
# that directory as an artifact.
#
#   bash scripts/browser-test.sh
#
# Installs what is missing (apt: chromium; npm ci in tests/browser), builds
# andon and the sample service, runs `node --test`, and whatever happens
# ends every process started under its own temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
LIMIT="${BROWSER_TEST_TIMEOUT:-900}"

if [ ! -x /usr/bin/chromium ]; then
    echo "== installing chromium (apt)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq chromium chromium-driver >/dev/null
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "== installing node and npm (apt)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq nodejs npm >/dev/null
fi

echo "== npm ci (tests/browser)"
(cd tests/browser && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)

echo "== cargo build -p andon-cli -p sample-service"
cargo build -q -p andon-cli -p sample-service

# Every temp dir of the run (data, repositories, browser profiles) lives
# here, so cleanup can find what the run started by its paths.
RUN_TMP=$(mktemp -d /tmp/andon-browser-run.XXXXXX)
cleanup() {
    for proc in /proc/[0-9]*; do
        pid=${proc#/proc/}
        [ "$pid" = "$$" ] && continue
        cmd=$(tr '\0' ' ' 2>/dev/null <"$proc/cmdline" || true)
        cwd=$(readlink "$proc/cwd" 2>/dev/null || true)
        case "$cmd $cwd" in
            *"$RUN_TMP"*) kill -9 "$pid" 2>/dev/null || true ;;
        esac
    done
    rm -rf "$RUN_TMP"
}
trap cleanup EXIT INT TERM

echo "== node --test (screenshots in ${ANDON_ARTIFACTS:-target/ci-artifacts}/screenshots/)"
cd tests/browser
TMPDIR="$RUN_TMP" timeout --kill-after=10 "$LIMIT" \
    node --test --test-concurrency=1 --test-timeout=240000 tests/
