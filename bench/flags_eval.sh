#!/usr/bin/env bash
# Flag evaluation cost (crates/andon-flags/benches/eval.rs, criterion):
# eval_bool (a plain boolean flag), eval_rules (a context that walks five
# rules and a segment), eval_rollout (a 3-variant percentage split), on a
# compiled Engine. Goal: <= 100 ns median each.
#
#   bash bench/flags_eval.sh                 # criterion's defaults
#   bash bench/flags_eval.sh --measurement-time 10   # extra args go to criterion
#
# The last line is the summary, medians in nanoseconds:
#   flags eval_ns_bool: A eval_ns_rules: B eval_ns_rollout: C
# Wall-clock medians: on a machine shared with other work they include the
# time other processes take the CPU away.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET="${CARGO_TARGET_DIR:-$PWD/target}"
case "$TARGET" in /*) ;; *) TARGET="$PWD/$TARGET" ;; esac
export CARGO_TARGET_DIR="$TARGET"

cargo bench -q -p andon-flags --bench eval -- "$@" >&2

median() {
    local file="$TARGET/criterion/$1/new/estimates.json"
    if [ ! -f "$file" ]; then
        echo "no criterion estimates at $file" >&2
        exit 1
    fi
    if command -v python3 >/dev/null; then
        python3 -c 'import json,sys; print("%.1f" % json.load(open(sys.argv[1]))["median"]["point_estimate"])' "$file"
    else
        sed -E 's/.*"median":\{"confidence_interval":\{[^}]*\},"point_estimate":([0-9.eE+-]+).*/\1/' "$file" |
            awk '{ printf "%.1f\n", $1 }'
    fi
}

echo "flags eval_ns_bool: $(median eval_bool) eval_ns_rules: $(median eval_rules) eval_ns_rollout: $(median eval_rollout)"
