#!/usr/bin/env bash
# The speed ratios of issues 3, 10 and 21, in one go: in-process verification and
# revocation-check costs, then HTTP with wrk on SQLite, on PostgreSQL and through
# nginx + TLS in front of two instances. Results and charts land in bench/results/
# (not committed). BENCH_SHORT=1: short turns, to check the machinery in ~3 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_venv "test,bench"
ensure_apt redis-server redis-server
ensure_apt wrk wrk
ensure_apt nginx nginx
started=$(date +%s)
# Every step is bounded: a stalled server fails the run instead of hanging it.
step() { timeout "${BENCH_STEP_TIMEOUT:-900}" "$VENV/bin/python" "$@"; }

if [ -n "${BENCH_SHORT:-}" ] && [ "${BENCH_SHORT}" != 0 ]; then
  export BENCH_VERIFY_PASSES=${BENCH_VERIFY_PASSES:-1}
  export BENCH_REVOCATIONS=${BENCH_REVOCATIONS:-50000} BENCH_PAIRS=${BENCH_PAIRS:-40}
fi

log "verification against the raw ECDSA floor"
step bench/verify.py
log "revocation check cost, empty and with 1 million live revocations (SQLite)"
step bench/revocation.py
# One throw-away PostgreSQL for the rest, with fsync on (scripts/lib.sh turns it off
# for the tests; the last -c wins): a commit here costs what it costs in production.
PG_DIR=$(mktemp -d /tmp/tessera-pg.XXXXXX)
trap 'pg_stop "$PG_DIR"' EXIT
PG_OPTIONS="-c fsync=on -c synchronous_commit=on ${PG_OPTIONS:-}" pg_start "$PG_DIR"
log "the same on a throw-away PostgreSQL (fsync on)"
BENCH_DATABASE_URL=$PG_URL step bench/revocation.py
log "HTTP (wrk): SQLite, PostgreSQL, nginx + TLS in front of two instances"
BENCH_DATABASE_URL=$PG_URL step bench/http_load.py
pg_stop "$PG_DIR"
log "make bench took $(( $(date +%s) - started )) s"
