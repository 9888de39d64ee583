#!/usr/bin/env bash
# Bring Tessera up on 127.0.0.1:8000 on the embedded default (SQLite in
# instance/, no Redis): virtualenv, install, migrate, signing key, gunicorn.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_venv
export FLASK_APP=wsgi
log "migrating the database"
"$VENV/bin/flask" db upgrade
if "$VENV/bin/flask" keys --help >/dev/null 2>&1; then
  log "making sure a signing key exists"
  "$VENV/bin/flask" keys ensure
fi
cat >&2 <<MSG

Tessera is starting on http://127.0.0.1:8000
  - log in at      http://127.0.0.1:8000/login
  - first admin:   FLASK_APP=wsgi $VENV/bin/flask users create-admin
  - health:        http://127.0.0.1:8000/readyz
MSG
exec "$VENV/bin/gunicorn" -c gunicorn.conf.py wsgi:app
