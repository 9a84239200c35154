#!/usr/bin/env bash
# Dependency policy with cargo-deny (deny.toml): licences, banned crates and
# sources. These checks need only Cargo.lock and the local registry cache,
# so they run offline. Installs cargo-deny if it is missing.
#
#   bash scripts/deny.sh              # licenses bans sources
#   bash scripts/deny.sh --advisories # also the RustSec advisories (needs github.com)
#
# The advisories check fetches the RustSec database from GitHub; this
# machine cannot reach it, so it is left out unless asked for.
set -euo pipefail
cd "$(dirname "$0")/.."
checks=(licenses bans sources)
[ "${1:-}" = "--advisories" ] && checks+=(advisories)
if ! command -v cargo-deny >/dev/null 2>&1; then
  echo "deny: installing cargo-deny" >&2
  cargo install cargo-deny --locked
fi
cargo deny --offline check "${checks[@]}"
