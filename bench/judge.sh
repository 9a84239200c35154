#!/usr/bin/env bash
# Detection benchmark of the judge (andon-judge/examples/detection.rs):
# median seconds to detect a 1% -> 5% error-rate canary, false alarms on
# A/A traffic, and Flagger-style threshold checks on the same traffic.
# The last line is the summary:
#   judge detection_median_s: X false_alarm_rate: Y flagger10s_median_s: A flagger60s_median_s: B
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/work/target-judge}"
cargo build --release -q -p andon-judge --example detection
exec "$CARGO_TARGET_DIR/release/examples/detection"
