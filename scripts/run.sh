#!/usr/bin/env bash
# Bring Tessera up on 127.0.0.1:8000 on the embedded default (SQLite in
# instance/, no Redis): virtualenv, install, migrate, signing key, gunicorn.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_venv
export FLASK_APP=wsgi
# Plain http on loopback: Secure cookies would be dropped by Safari (Chromium and
# Firefox make an exception for localhost), so development turns Secure off unless
# told otherwise. Production (https) keeps the default, and start-up refuses
# COOKIE_SECURE=false there.
bind=${TESSERA_BIND:-127.0.0.1:8000}
case "$bind" in
  127.*|localhost:*|"[::1]":*) export TESSERA_COOKIE_SECURE=${TESSERA_COOKIE_SECURE:-false} ;;
esac
log "migrating the database"
"$VENV/bin/flask" db upgrade
if "$VENV/bin/flask" keys --help >/dev/null 2>&1; then
  log "making sure a signing key exists"
  "$VENV/bin/flask" keys ensure
fi
cat >&2 <<MSG

Tessera is starting on http://$bind (cookies Secure: ${TESSERA_COOKIE_SECURE:-true})
  - log in at      http://$bind/login
  - first admin:   FLASK_APP=wsgi $VENV/bin/flask users create-admin
  - health:        http://$bind/readyz
MSG
exec "$VENV/bin/gunicorn" -c gunicorn.conf.py wsgi:app
