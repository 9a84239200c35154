#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine. Idempotent:
# a package already present is not fetched again.
set -euo pipefail
need=()
command -v git >/dev/null || need+=(git)
command -v bwrap >/dev/null || need+=(bubblewrap)
[ -x /usr/lib/postgresql/15/bin/initdb ] || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
fi
# The repository pins its toolchain (rust-toolchain.toml); make sure clippy and rustfmt are there.
rustup component add clippy rustfmt >/dev/null 2>&1 || true
