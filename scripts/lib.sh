# Shared shell helpers for scripts/run.sh and scripts/test.sh. Sourced, not run.

VENV=${VENV:-.venv}
PG_USER=${PG_USER:-tessera-pg}

log() { printf '\n== %s\n' "$*" >&2; }

# Create the virtualenv and install the project (with extras: "test", "bench"...).
ensure_venv() {
  local extras=${1:-}
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating virtualenv in $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip
  fi
  local target="."
  [ -n "$extras" ] && target=".[$extras]"
  # The strict verifier first: Tessera requires tessera-verifier, which lives in
  # ./verifier (not on an index), and its tests run with the suite.
  log "installing ./verifier and $target"
  "$VENV/bin/pip" install -q --disable-pip-version-check -e "./verifier[test]"
  "$VENV/bin/pip" install -q --disable-pip-version-check -e "$target"
}

# Install Debian packages when the named command is missing.
APT_UPDATED=
ensure_apt() {
  local command=$1; shift
  command -v "$command" >/dev/null 2>&1 && return 0
  apt_install "$@"
}

# Install Debian packages (apt-get update once per script).
apt_install() {
  log "installing $* (apt)"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  if [ -z "$APT_UPDATED" ]; then $sudo apt-get update -qq; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

free_port() {
  "$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# PostgreSQL refuses to run as root: run its binaries as an unprivileged user.
_as_pg_user() {
  if [ "$(id -u)" -eq 0 ]; then
    id "$PG_USER" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$PG_USER"
    runuser -u "$PG_USER" -- "$@"
  else
    "$@"
  fi
}

# The directory of PostgreSQL's server binaries (initdb, pg_ctl): the PATH's, else
# Debian's /usr/lib/postgresql/<version>/bin (newest), installing the `postgresql`
# package when neither has them. Sets PG_BIN.
ensure_postgres() {
  local found
  found=$(command -v initdb 2>/dev/null || true)
  if [ -z "$found" ]; then
    found=$(ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1 || true)
  fi
  if [ -z "$found" ]; then
    apt_install postgresql
    found=$(ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1 || true)
  fi
  if [ -z "$found" ]; then
    log "PostgreSQL: no initdb on the PATH or in /usr/lib/postgresql/*/bin, even after apt"
    return 1
  fi
  PG_BIN=$(dirname "$(readlink -f "$found")")  # a PATH entry may be a lone symlink
}

# Print a failed step's log, so that CI shows why PostgreSQL did not start.
_show_log() {
  log "$1 failed; its log ($2):"
  cat "$2" >&2 || true
  return 1
}

# pg_start DIR: start a throw-away PostgreSQL in DIR on a free loopback port; sets PG_URL.
# PG_OPTIONS adds server options (the tests use it to make a start fail on purpose).
pg_start() {
  local dir=$1 port
  ensure_postgres
  port=$(free_port)
  mkdir -p "$dir"
  [ "$(id -u)" -eq 0 ] && { _as_pg_user true; chown "$PG_USER" "$dir"; }
  _as_pg_user "$PG_BIN/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 \
    >"$dir/initdb.log" 2>&1 || _show_log initdb "$dir/initdb.log" || return 1
  _as_pg_user "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200 ${PG_OPTIONS:-}" \
    start >/dev/null || _show_log "PostgreSQL start" "$dir/server.log" || return 1
  _as_pg_user "$PG_BIN/createdb" -h 127.0.0.1 -p "$port" -U postgres tessera >/dev/null || return 1
  PG_URL="postgresql://postgres@127.0.0.1:$port/tessera"
}

pg_stop() {
  local dir=$1
  [ -d "$dir/data" ] && [ -n "${PG_BIN:-}" ] && _as_pg_user "$PG_BIN/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
