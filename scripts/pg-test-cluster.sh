#!/usr/bin/env bash
# A private, throwaway PostgreSQL cluster for andon-store's test suite.
#
#   scripts/pg-test-cluster.sh start   # init (fresh) + start; prints the connection URL
#   scripts/pg-test-cluster.sh url     # prints the URL of the running cluster
#   scripts/pg-test-cluster.sh stop    # stops it and deletes its data directory
#
# Typical use (CI):
#   export ANDON_TEST_PG="$(scripts/pg-test-cluster.sh start)"
#   cargo test -p andon-store
#   scripts/pg-test-cluster.sh stop
#
# Trust authentication, loopback only, fsync off: a test fixture, never a server
# to keep data in. PostgreSQL refuses to run as root, so when run as root the
# cluster belongs to a dedicated user (`pgrun`, created if missing).
#
# Environment: ANDON_PG_DIR (default /tmp/andon-pgtest), ANDON_PG_PORT
# (default 55432), ANDON_PG_USER (default pgrun, only used when root).
set -euo pipefail

DIR="${ANDON_PG_DIR:-/tmp/andon-pgtest}"
PORT="${ANDON_PG_PORT:-55432}"
RUN_AS="${ANDON_PG_USER:-pgrun}"
URL="postgres://postgres@127.0.0.1:${PORT}/postgres"

find_bin() {
    local bin
    bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
    if [[ -z "$bin" ]]; then
        if [[ "$(id -u)" == 0 ]]; then
            echo "pg-test-cluster: installing postgresql (apt-get)" >&2
            # Output to stderr: stdout carries only the URL.
            (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >&2
            bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
        else
            echo "pg-test-cluster: PostgreSQL is not installed; run: apt-get install -y postgresql" >&2
            exit 1
        fi
    fi
    echo "$bin"
}

# Runs a command as the cluster's owner.
as_owner() {
    if [[ "$(id -u)" == 0 ]]; then
        su "$RUN_AS" -s /bin/sh -c "$*"
    else
        sh -c "$*"
    fi
}

start() {
    local bin
    bin="$(find_bin)"
    if [[ "$(id -u)" == 0 ]] && ! id "$RUN_AS" >/dev/null 2>&1; then
        useradd --system --no-create-home --shell /usr/sbin/nologin "$RUN_AS"
    fi
    if [[ -f "$DIR/postmaster.pid" ]] && as_owner "'$bin/pg_ctl' -D '$DIR' status" >/dev/null 2>&1; then
        echo "$URL"
        return
    fi
    rm -rf "$DIR"
    mkdir -p "$DIR"
    if [[ "$(id -u)" == 0 ]]; then chown "$RUN_AS" "$DIR"; fi
    chmod 700 "$DIR"
    as_owner "'$bin/initdb' -D '$DIR' -U postgres --auth=trust -N -E UTF8 --locale=C" >/dev/null
    as_owner "'$bin/pg_ctl' -D '$DIR' -l '$DIR/server.log' -w -t 60 \
        -o \"-p $PORT -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200\" start" >/dev/null
    echo "$URL"
}

stop() {
    local bin
    bin="$(find_bin)"
    if [[ -d "$DIR" ]]; then
        as_owner "'$bin/pg_ctl' -D '$DIR' -m fast -w stop" >/dev/null 2>&1 || true
        rm -rf "$DIR"
    fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    url) echo "$URL" ;;
    *) echo "usage: $0 start|stop|url" >&2; exit 2 ;;
esac
