#!/usr/bin/env bash
# Runs every fuzz target of fuzz/ for a bounded time; fails on the first crash.
#
#   bash scripts/fuzz.sh [--seconds N] [TARGET...]
#
# N seconds per target (default 30). Needs the nightly toolchain (for the
# sanitizer flags cargo-fuzz passes); installs cargo-fuzz if it is missing.
# New inputs libFuzzer finds go to a scratch corpus, so fuzz/corpus/ keeps
# only the small committed seeds; a crashing input is kept in
# fuzz/artifacts/TARGET/ and printed, ready for `cargo +nightly fuzz run
# TARGET fuzz/artifacts/TARGET/crash-...` to reproduce.
set -euo pipefail

seconds=30
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --seconds=*) seconds="${1#*=}"; shift ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) targets+=("$1"); shift ;;
  esac
done

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/fuzz"

if ! rustup toolchain list | grep -q '^nightly'; then
  echo "fuzz: installing the nightly toolchain" >&2
  rustup toolchain install nightly --profile minimal
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked
fi

if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list)
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/fuzz/target}"
# The webhook target drives the server, which runs git: keep git local-only.
export GIT_ALLOW_PROTOCOL=file
cargo +nightly fuzz build

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
failed=()
summary=()
for t in "${targets[@]}"; do
  mkdir -p "$scratch/$t" "corpus/$t"
  dict=()
  [ -f "dicts/$t.dict" ] && dict=("-dict=dicts/$t.dict")
  log="$scratch/$t.log"
  echo "== fuzz $t for ${seconds}s"
  # First corpus dir gets new inputs (scratch); the committed seeds are read only.
  if cargo +nightly fuzz run "$t" "$scratch/$t" "corpus/$t" -- \
      -max_total_time="$seconds" -timeout=20 -rss_limit_mb=4096 "${dict[@]}" \
      -print_final_stats=1 >"$log" 2>&1; then
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo "?")
    corp=$(grep -o 'corp: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo "?")
    summary+=("$t: $runs executions, coverage $cov, corpus $corp inputs, 0 crashes")
  else
    failed+=("$t")
    summary+=("$t: CRASH")
    grep -E 'panicked|ERROR: libFuzzer|SUMMARY|Test unit written|Base64' "$log" | head -20 >&2 || tail -40 "$log" >&2
  fi
done

echo "== fuzz summary"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: crashes in ${failed[*]} (inputs in fuzz/artifacts/)" >&2
  exit 1
fi
