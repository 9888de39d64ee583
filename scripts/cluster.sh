#!/usr/bin/env bash
# The production topology on one machine, all on 127.0.0.1:
#
#   nginx: deploy/nginx/tessera.conf.template, TLS from a CA made here, HTTP/2
#     ├── host a: a gunicorn master and its workers (tessera:create_app())
#     └── host b: another master, as a second machine would run
#   sharing one PostgreSQL (scripts/lib.sh's, run as an unprivileged user) and
#   one Redis. Each host's settings are deploy/tessera.env.example filled in.
#
#   scripts/cluster.sh up [DIR]     start it all (DIR: /tmp/tessera-cluster)
#   scripts/cluster.sh down [DIR]   stop what `up` started there and delete DIR
#
# DIR/cluster.env names the pieces (CLUSTER_URL, CLUSTER_CA, HOST_A_ENV...);
# tests/ops/test_topology.py reads it. DIR's parents must be open to other
# users (PostgreSQL and nginx's workers run unprivileged when this runs as root).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
. scripts/lib.sh

DIR=${2:-${CLUSTER_DIR:-/tmp/tessera-cluster}}
WORKERS=${CLUSTER_WORKERS:-2}  # per host
HOSTS=(a b)

die() { printf 'cluster: %s\n' "$*" >&2; exit 1; }

# A pid that is still running (an exited child of nobody's may linger as a zombie).
alive() { [ -r "/proc/$1/stat" ] && ! grep -q '^[0-9]* (.*) Z' "/proc/$1/stat"; }

wait_gone() {  # pid seconds
  local pid=$1 n=$(($2 * 10))
  while alive "$pid" && [ "$n" -gt 0 ]; do sleep 0.1; n=$((n - 1)); done
  ! alive "$pid"
}

# stop_pidfile FILE SIGNAL SECONDS: signal the process named in FILE, then KILL its group.
stop_pidfile() {
  local file=$1 signal=$2 seconds=$3 pid
  [ -s "$file" ] || return 0
  pid=$(cat "$file")
  alive "$pid" || return 0
  kill -s "$signal" "$pid" 2>/dev/null || true
  wait_gone "$pid" "$seconds" || { kill -KILL -- "-$pid" "$pid" 2>/dev/null || true; }
}

# Run a command with one host's settings only, as systemd's EnvironmentFile would.
as_host() {
  local host=$1; shift
  env -i PATH="$PATH" HOME="${HOME:-/root}" LANG=C.UTF-8 \
    bash -c 'set -a; . "$0"; set +a; cd "${0%/*}"; exec "$@"' "$DIR/hosts/$host/tessera.env" "$@"
}

# deploy/tessera.env.example with this cluster's values; every placeholder must go.
host_env() {
  local host=$1 port=$2 line key
  declare -A value=(
    [DATABASE_URL]=$PG_URL [REDIS_URL]=$REDIS_URL [TESSERA_ISSUER]=$ORIGIN
    [TESSERA_KEY_ENCRYPTION_KEY]=$KEK [TESSERA_BIND]=127.0.0.1:$port
    [TESSERA_WORKERS]=$WORKERS [TESSERA_INSTANCE_PATH]=$DIR/hosts/$host/instance
  )
  while IFS= read -r line; do
    case $line in '' | '#'*) continue ;; esac
    key=${line%%=*}
    printf '%s=%s\n' "$key" "${value[$key]:-${line#*=}}"
  done <deploy/tessera.env.example
}

make_tls() {  # a CA, and a certificate for localhost and 127.0.0.1 that it signs
  local tls=$DIR/tls
  mkdir -p "$tls"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=Tessera cluster CA" -keyout "$tls/ca.key" -out "$tls/ca.pem" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" 2>/dev/null
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
    -keyout "$tls/server.key" -out "$tls/server.csr" 2>/dev/null
  printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" "basicConstraints=critical,CA:FALSE" \
    "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" >"$tls/server.ext"
  openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" \
    -set_serial "0x$(openssl rand -hex 8)" -days 2 -extfile "$tls/server.ext" \
    -out "$tls/server.pem" 2>/dev/null
  chmod 600 "$tls/ca.key" "$tls/server.key"
}

start_redis() {
  mkdir -p "$DIR/redis"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$DIR/redis" --daemonize yes --pidfile "$DIR/redis/redis.pid" \
    --logfile "$DIR/redis/redis.log" >/dev/null
  local n=100
  until redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; do
    n=$((n - 1)); [ "$n" -gt 0 ] || { cat "$DIR/redis/redis.log" >&2; die "redis did not start"; }
    sleep 0.1
  done
}

start_host() {  # host: its gunicorn master, in the background
  local home=$DIR/hosts/$1
  # setsid: the master leads its own process group, which `down` can stop as a whole.
  as_host "$1" setsid -w "$BIN/gunicorn" --config "$ROOT/gunicorn.conf.py" \
    --pid "$home/gunicorn.pid" 'tessera:create_app()' >>"$home/gunicorn.log" 2>&1 </dev/null &
  echo $! >"$home/launcher.pid"
}

wait_host() {  # host port: until it answers /readyz; its log if it cannot
  local home=$DIR/hosts/$1 n=300
  until curl -sf -o /dev/null "http://127.0.0.1:$2/readyz"; do
    n=$((n - 1))
    if [ "$n" -le 0 ] || ! alive "$(cat "$home/launcher.pid")"; then
      cat "$home/gunicorn.log" >&2; die "host $1 (gunicorn) did not start"
    fi
    sleep 0.1
  done
}

start_nginx() {
  local conf=$DIR/nginx user=""
  mkdir -p "$conf/logs" "$conf/tmp"
  if [ "$(id -u)" -eq 0 ]; then  # the master reads the key as root; workers drop to nobody
    user="user nobody nogroup;"
    chown nobody "$conf/tmp"
  fi
  SITE_NAME=localhost SITE_ORIGIN=$ORIGIN \
    SITE_HTTP_LISTEN=127.0.0.1:$HTTP_PORT SITE_HTTPS_LISTEN=127.0.0.1:$HTTPS_PORT \
    SITE_CERT=$DIR/tls/server.pem SITE_KEY=$DIR/tls/server.key \
    SITE_UPSTREAMS="server 127.0.0.1:$PORT_A; server 127.0.0.1:$PORT_B;" SITE_LOGS=$conf/logs \
    envsubst '${SITE_NAME} ${SITE_ORIGIN} ${SITE_HTTP_LISTEN} ${SITE_HTTPS_LISTEN} ${SITE_CERT} ${SITE_KEY} ${SITE_UPSTREAMS} ${SITE_LOGS}' \
    <deploy/nginx/tessera.conf.template >"$conf/tessera.conf"
  # Debian's nginx.conf, reduced to what a private instance needs. One worker: requests
  # then alternate between the two hosts (round robin), which the test relies on.
  cat >"$conf/nginx.conf" <<CONF
$user
worker_processes 1;
pid $conf/nginx.pid;
error_log $conf/logs/error.log;
events { worker_connections 256; }
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log off;
    client_body_temp_path $conf/tmp/body;
    proxy_temp_path $conf/tmp/proxy;
    fastcgi_temp_path $conf/tmp/fastcgi;
    uwsgi_temp_path $conf/tmp/uwsgi;
    scgi_temp_path $conf/tmp/scgi;
    include $conf/tessera.conf;
}
CONF
  nginx -q -t -p "$conf" -c "$conf/nginx.conf" -e "$conf/logs/error.log" ||
    die "nginx refused its configuration (above)"
  nginx -p "$conf" -c "$conf/nginx.conf" -e "$conf/logs/error.log"
}

cmd_up() {
  [ -e "$DIR/cluster.env" ] && die "$DIR is up already (scripts/cluster.sh down $DIR)"
  ensure_apt nginx nginx
  ensure_apt envsubst gettext-base
  ensure_apt redis-server redis-server
  ensure_apt curl curl
  [ -x "$VENV/bin/tessera" ] || ensure_venv
  BIN=$(cd "$VENV/bin" && pwd)
  mkdir -p "$DIR" && chmod 755 "$DIR"
  trap 'status=$?; if [ $status -ne 0 ]; then echo "cluster: up failed, stopping what started" >&2; cmd_down; fi' EXIT

  HTTPS_PORT=$(free_port) HTTP_PORT=$(free_port) REDIS_PORT=$(free_port)
  PORT_A=$(free_port) PORT_B=$(free_port)
  ORIGIN=https://localhost:$HTTPS_PORT
  REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0
  KEK=$("$BIN/python" -c 'import base64, secrets; print(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())')

  log "cluster in $DIR: CA and certificate"
  make_tls
  log "PostgreSQL and Redis"
  pg_start "$DIR/pg"
  start_redis
  local host port
  for host in "${HOSTS[@]}"; do
    port=$PORT_A; [ "$host" = b ] && port=$PORT_B
    mkdir -p "$DIR/hosts/$host"
    host_env "$host" "$port" >"$DIR/hosts/$host/tessera.env"
    ! grep -n '<' "$DIR/hosts/$host/tessera.env" || die "a placeholder was left (above)"
  done
  log "migrations and signing keys (once, from host a)"
  as_host a "$BIN/tessera" db upgrade >"$DIR/hosts/a/migrate.log" 2>&1 ||
    { cat "$DIR/hosts/a/migrate.log" >&2; die "tessera db upgrade failed"; }
  as_host a "$BIN/tessera" keys ensure >/dev/null
  log "hosts a (127.0.0.1:$PORT_A) and b (127.0.0.1:$PORT_B), $WORKERS workers each"
  start_host a
  start_host b
  wait_host a "$PORT_A"
  wait_host b "$PORT_B"
  log "nginx on $ORIGIN"
  start_nginx
  cat >"$DIR/cluster.env" <<ENV
CLUSTER_URL=$ORIGIN
CLUSTER_HTTP_URL=http://127.0.0.1:$HTTP_PORT
CLUSTER_CA=$DIR/tls/ca.pem
CLUSTER_CERT=$DIR/tls/server.pem
CLUSTER_ACCESS_LOG=$DIR/nginx/logs/tessera-access.log
HOST_A_ENV=$DIR/hosts/a/tessera.env
HOST_A_URL=http://127.0.0.1:$PORT_A
HOST_B_ENV=$DIR/hosts/b/tessera.env
HOST_B_URL=http://127.0.0.1:$PORT_B
PG_URL=$PG_URL
REDIS_URL=$REDIS_URL
ENV
  cat >&2 <<MSG

Tessera cluster up in $DIR
  - log in at      $ORIGIN/login  (certificate from $DIR/tls/ca.pem)
  - first admin:   set -a; . $DIR/hosts/a/tessera.env; set +a; $BIN/tessera users create-admin
  - logs:          $DIR/hosts/*/gunicorn.log, $DIR/nginx/logs/
  - stop:          scripts/cluster.sh down $DIR
MSG
}

cmd_down() {
  [ -d "$DIR" ] || return 0
  stop_pidfile "$DIR/nginx/nginx.pid" QUIT 10
  local host
  for host in "${HOSTS[@]}"; do  # at once, as separate machines would stop
    stop_pidfile "$DIR/hosts/$host/gunicorn.pid" TERM 35 &
  done
  wait
  stop_pidfile "$DIR/redis/redis.pid" TERM 10
  pg_stop "$DIR/pg"
  rm -rf "$DIR"
}

case ${1:-} in
  up) cmd_up ;;
  down) cmd_down ;;
  *) echo "usage: scripts/cluster.sh up|down [DIR]" >&2; exit 2 ;;
esac
