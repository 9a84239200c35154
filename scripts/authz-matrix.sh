#!/usr/bin/env bash
# Authorization matrix over every endpoint of the served OpenAPI document x
# every caller (no token, a bad token, viewer, developer, deployer, admin, a
# deployer token scoped to another environment), plus the failed-auth rate
# limit (429) and the 1 MiB body limit (413). See scripts/authz/matrix.py for
# the rule each answer is checked against.
#
#   bash scripts/authz-matrix.sh
#
# Last line: `authz checked: C wrong: W`; exit status 0 only when W = 0.
# AUTHZ_RESULTS=FILE also writes every check as a JSON line to FILE.
set -euo pipefail
source "$(dirname "$0")/authz/start-server.sh"
set +e
python3 "$root/scripts/authz/matrix.py" --port "$PORT" --admin "$ADMIN_TOKEN" --repo "$REPO" \
  ${AUTHZ_RESULTS:+--results "$AUTHZ_RESULTS"}
status=$?
set -e
if ! kill -0 "$SERVER_PID" 2>/dev/null; then
  echo "authz: the server died during the matrix; its log:" >&2
  tail -50 "$WORK/server.log" >&2
  status=1
fi
exit $status
