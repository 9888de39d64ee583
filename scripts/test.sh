#!/usr/bin/env bash
# The whole test suite, twice: on SQLite, then on a real PostgreSQL this script
# starts (and stops). Real redis-server processes are started by the tests.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_venv test

log "lint: ruff, mypy --strict (configured in pyproject.toml)"
"$VENV/bin/ruff" check app tests bench verifier gunicorn.conf.py
"$VENV/bin/mypy"

ensure_apt redis-server redis-server
ensure_apt redis-sentinel redis-sentinel  # the Sentinel failover tests start three
ensure_apt chromium chromium  # the web page tests drive it through Playwright

log "test suite on SQLite"
"$VENV/bin/python" -m pytest "$@"

log "test suite on PostgreSQL"
PG_DIR=$(mktemp -d /tmp/tessera-pg.XXXXXX)
trap 'pg_stop "$PG_DIR"' EXIT
pg_start "$PG_DIR"
TEST_DATABASE_URL=$PG_URL "$VENV/bin/python" -m pytest "$@"
