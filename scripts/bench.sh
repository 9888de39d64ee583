#!/usr/bin/env bash
# The speed ratios of issue 3 and 10, in one go: in-process verification and
# revocation-check costs, then HTTP on loopback with wrk. Results land in
# bench/results/*.json (not committed).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_venv "test,bench"
ensure_apt redis-server redis-server
ensure_apt wrk wrk

log "verification against the raw ECDSA floor"
"$VENV/bin/python" bench/verify.py
log "revocation check cost, empty and with 1 million live revocations (SQLite)"
"$VENV/bin/python" bench/revocation.py
log "the same on a throw-away PostgreSQL"
PG_DIR=$(mktemp -d /tmp/tessera-pg.XXXXXX)
trap 'pg_stop "$PG_DIR"' EXIT
pg_start "$PG_DIR"
BENCH_DATABASE_URL=$PG_URL "$VENV/bin/python" bench/revocation.py
pg_stop "$PG_DIR"
log "HTTP on loopback (wrk)"
"$VENV/bin/python" bench/http_load.py
