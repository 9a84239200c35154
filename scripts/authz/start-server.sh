# Sourced by scripts/authz-matrix.sh and scripts/schemathesis.sh: builds the
# CLI, makes a throwaway git repository and starts `andon server` on a free
# 127.0.0.1 port with a known admin token. Sets ANDON_BIN, WORK, REPO, PORT,
# BASE, ADMIN_TOKEN and SERVER_PID; an EXIT trap stops the server and removes
# WORK. Everything stays on this machine: git may only use local paths
# (GIT_ALLOW_PROTOCOL=file), so a repository URL sent to the API can never
# make the server reach out.

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
export GIT_ALLOW_PROTOCOL=file
export GIT_TERMINAL_PROMPT=0

# ANDON_BIN=PATH runs an already built binary instead of building one.
if [ -z "${ANDON_BIN:-}" ]; then
  (cd "$root" && cargo build -q -p andon-cli)
  ANDON_BIN="$CARGO_TARGET_DIR/debug/andon"
fi

WORK="$(mktemp -d)"
REPO="$WORK/repo"
SERVER_PID=""
stop_server() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap stop_server EXIT

mkdir -p "$REPO"
git -C "$REPO" init -q --initial-branch=main
git -C "$REPO" config user.name "Authz"
git -C "$REPO" config user.email "authz@example.com"
cat >"$REPO/andon.yaml" <<'YAML'
pipeline:
  stages:
    - name: commit
      jobs:
        - name: unit
          run: "true"
environments:
  staging:
    target:
      process:
        command: ./app --port $PORT
  production:
    after: staging
    target:
      process:
        command: ./app --port $PORT
YAML
git -C "$REPO" add -A
git -C "$REPO" commit -q -m first

PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
BASE="http://127.0.0.1:$PORT"
ADMIN_TOKEN="andon_$(python3 -c 'import secrets; print(secrets.token_hex(32))')"
ANDON_ADMIN_TOKEN="$ADMIN_TOKEN" "$ANDON_BIN" server --data "$WORK/data" --listen "127.0.0.1:$PORT" \
  --no-router --parallelism 1 >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
  curl -fsS "$BASE/healthz" >/dev/null 2>&1 && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; echo "server did not start" >&2; exit 1; }
  sleep 0.1
done
