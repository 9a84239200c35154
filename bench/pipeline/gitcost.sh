#!/usr/bin/env bash
# Standalone cost of each step the server takes between a webhook and a job's
# process, measured on this machine without Andon, so the latency breakdown can
# be attributed:
#
#   bash gitcost.sh WORK_DIR [REPS]
#
# Prints one line per step: `step: median_ms`. WORK_DIR must not exist.
set -euo pipefail
WORK="$1"
REPS="${2:-20}"
mkdir -p "$WORK"
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@localhost GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@localhost

now() { date +%s%N; }
median_ms() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.2f\n", m/1e6}'; }

git init -q -b main "$WORK/src"
printf 'pipeline:\n  stages:\n    - name: s\n      jobs:\n        - name: a\n          run: "true"\n' >"$WORK/src/andon.yaml"
git -C "$WORK/src" add andon.yaml
git -C "$WORK/src" commit -q -m init
git clone -q --mirror "$WORK/src" "$WORK/mirror"

step() { # name, then a command run REPS times; a new commit is made before each rep
    local name="$1"; shift
    local t0 t1
    for _ in $(seq "$REPS"); do
        git -C "$WORK/src" commit -q --allow-empty -m x
        git -C "$WORK/mirror" fetch -q --prune origin '+refs/heads/*:refs/heads/*'
        SHA="$(git -C "$WORK/src" rev-parse HEAD)"
        git -C "$WORK/src" commit -q --allow-empty -m y
        export SHA
        rm -rf "$WORK/co"
        t0=$(now); "$@" >/dev/null 2>&1; t1=$(now)
        echo $((t1 - t0))
    done | median_ms | sed "s/^/$name: /"
}

step "git fetch (1 new commit) into the mirror" \
    git -C "$WORK/mirror" fetch --quiet --prune origin '+refs/heads/*:refs/heads/*'
step "git rev-parse --verify" git -C "$WORK/mirror" rev-parse --verify --quiet 'main^{commit}'
step "git log -1 (commit info)" git -C "$WORK/mirror" log -1 --format=%s%x00%an%x00%ct main
step "git clone --shared --no-checkout + checkout --detach" \
    sh -c 'git clone -q --shared --no-checkout -- "$0/mirror" "$0/co" && git -C "$0/co" -c advice.detachedHead=false checkout -q --detach "$SHA"' "$WORK"
step "sh -c 'date +%s%N' (spawn of a job)" sh -c 'date +%s%N'
python3 - "$WORK/db.sqlite" "$REPS" <<'PY'
import sqlite3, sys, time, statistics
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA journal_mode=WAL"); db.execute("PRAGMA synchronous=FULL")
db.execute("CREATE TABLE e (seq INTEGER PRIMARY KEY, body TEXT)")
xs = []
for i in range(int(sys.argv[2])):
    t = time.perf_counter_ns()
    db.execute("BEGIN"); db.execute("INSERT INTO e (body) VALUES (?)", ("x" * 200,)); db.execute("COMMIT")
    xs.append(time.perf_counter_ns() - t)
print(f"SQLite WAL synchronous=FULL commit of one event: {statistics.median(xs)/1e6:.2f}")
PY
