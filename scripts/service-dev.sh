#!/usr/bin/env bash
# service-dev.sh — run a local BitVault stack: PostgreSQL 15 + versitygw (S3) + bitvaultd.
#
#   scripts/service-dev.sh [start]   start (or reuse) everything, create the dev tenant, print CLI commands
#   scripts/service-dev.sh stop      stop bitvaultd, versitygw and PostgreSQL (state is kept)
#   scripts/service-dev.sh status    show what is running
#   scripts/service-dev.sh env       print the exports bitvaultd runs with (secrets included)
#   scripts/service-dev.sh reset     stop and delete the state directory
#
# Idempotent: a second start reuses the running processes and the existing cluster/tenant.
# Environment (all optional):
#   BITVAULT_DEV_STATE      state dir (default ${XDG_STATE_HOME:-~/.local/state}/bitvault/dev)
#   BITVAULT_DEV_PG_PORT    PostgreSQL port (default 54329)
#   BITVAULT_DEV_S3_PORT    versitygw port (default 7071)
#   BITVAULT_DEV_HTTP_PORT  bitvaultd port (default 8080)
#   BITVAULT_STORAGE        s3 (default: versitygw) or fs (bitvaultd serves blobs itself)
#   BITVAULT_DEV_PASSWORD   owner password (default: generated, printed once, kept in the state dir)
#   BITVAULT_DEV_TENANT     tenant slug (default dev); BITVAULT_DEV_EMAIL owner (default owner@example.com)
#   BITVAULT_PG_BIN         PostgreSQL bin dir (default /usr/lib/postgresql/15/bin)
#   BITVAULT_VERSITYGW      versitygw binary (default ~/.cache/bitvault/tools/versitygw-v1.8.0/versitygw)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${BITVAULT_DEV_STATE:-${XDG_STATE_HOME:-$HOME/.local/state}/bitvault/dev}
PG_PORT=${BITVAULT_DEV_PG_PORT:-54329}
S3_PORT=${BITVAULT_DEV_S3_PORT:-7071}
HTTP_PORT=${BITVAULT_DEV_HTTP_PORT:-8080}
STORAGE=${BITVAULT_STORAGE:-s3}
TENANT=${BITVAULT_DEV_TENANT:-dev}
EMAIL=${BITVAULT_DEV_EMAIL:-owner@example.com}
PG_BIN=${BITVAULT_PG_BIN:-/usr/lib/postgresql/15/bin}
VERSITYGW=${BITVAULT_VERSITYGW:-${BITVAULT_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/bitvault/tools}/versitygw-v1.8.0/versitygw}
DB=bitvault
BUCKET=bitvault
PGDIR=$STATE/pg
PGDATA=$PGDIR/data
SOCK=$PGDIR/sock

log() { printf 'service-dev: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
rand() { head -c 32 /dev/urandom | base64 | tr -d '\n'; }
randpw() { head -c 18 /dev/urandom | base64 | tr -d '\n/+='; }

# as_pg runs a PostgreSQL tool as the postgres user when we are root (initdb refuses root).
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
psql_super() { as_pg "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCK" -p "$PG_PORT" -U postgres "$@"; }

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# secrets: generated once, kept in $STATE/secrets.env (0600).
load_secrets() {
  mkdir -p "$STATE"
  if [ ! -f "$STATE/secrets.env" ]; then
    umask 077
    {
      echo "OWNER_DB_PW=$(randpw)"
      echo "APP_DB_PW=$(randpw)"
      echo "TOKEN_KEY=$(rand)"
      echo "S3_ACCESS=bvdev$(randpw | head -c 8)"
      echo "S3_SECRET=$(randpw)"
      echo "USER_PW=${BITVAULT_DEV_PASSWORD:-$(randpw)}"
    } >"$STATE/secrets.env"
    umask 022
    NEW_PW=1
  fi
  # shellcheck disable=SC1091
  . "$STATE/secrets.env"
}

start_pg() {
  [ -x "$PG_BIN/initdb" ] || die "no PostgreSQL at $PG_BIN (apt-get install postgresql-15, or set BITVAULT_PG_BIN)"
  mkdir -p "$STATE"
  if [ "$(id -u)" = 0 ] && [ ! -e "$PGDIR" ]; then
    # PostgreSQL runs as postgres, which may not traverse root's home: keep the cluster in
    # /var/tmp then, linked from the state dir.
    if runuser -u postgres -- test -x "$STATE"; then
      mkdir -p "$PGDIR"
    else
      local real
      real=/var/tmp/bitvault-dev-pg-$(echo "$STATE" | md5sum | head -c 8)
      mkdir -p "$real" && ln -sfn "$real" "$PGDIR"
    fi
    chown postgres: "$PGDIR/"
  fi
  mkdir -p "$PGDIR"
  PGDIR=$(readlink -f "$PGDIR"); PGDATA=$PGDIR/data; SOCK=$PGDIR/sock
  if [ ! -f "$PGDATA/PG_VERSION" ]; then
    log "initdb $PGDATA"
    as_pg mkdir -p "$SOCK"
    as_pg "$PG_BIN/initdb" -D "$PGDATA" -U postgres -E UTF8 --no-locale \
      --auth-local=trust --auth-host=scram-sha-256 >"$STATE/initdb.log"
  fi
  as_pg mkdir -p "$SOCK"
  if as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; then
    log "postgres already running on port $PG_PORT"
  else
    log "starting postgres on 127.0.0.1:$PG_PORT"
    as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$PGDIR/server.log" -w -t 60 \
      -o "-p $PG_PORT -k $SOCK -c listen_addresses=127.0.0.1 -c max_connections=300 -c shared_buffers=256MB" start >/dev/null
  fi
  # The schema owner: a non-superuser that runs the migrations and owns the database.
  psql_super -d postgres <<SQL
SELECT 'CREATE ROLE bitvault_owner LOGIN NOSUPERUSER CREATEROLE NOBYPASSRLS'
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bitvault_owner') \gexec
ALTER ROLE bitvault_owner PASSWORD '$OWNER_DB_PW';
SELECT 'CREATE DATABASE $DB OWNER bitvault_owner'
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$DB') \gexec
SQL
}

start_s3() {
  [ "$STORAGE" = s3 ] || return 0
  [ -x "$VERSITYGW" ] || die "no versitygw at $VERSITYGW (scripts/tools.sh versitygw, or BITVAULT_STORAGE=fs)"
  mkdir -p "$STATE/s3/root/$BUCKET" # the posix backend: a directory is a bucket
  if pid_alive "$STATE/s3/pid"; then
    log "versitygw already running on port $S3_PORT"
    return
  fi
  log "starting versitygw on 127.0.0.1:$S3_PORT"
  nohup "$VERSITYGW" --port "127.0.0.1:$S3_PORT" --access "$S3_ACCESS" --secret "$S3_SECRET" \
    --region us-east-1 -q posix "$STATE/s3/root" >"$STATE/s3/versitygw.log" 2>&1 &
  echo $! >"$STATE/s3/pid"
  for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$S3_PORT/" && return
    pid_alive "$STATE/s3/pid" || die "versitygw exited: $(tail -5 "$STATE/s3/versitygw.log")"
    sleep 0.1
  done
  die "versitygw not answering on $S3_PORT"
}

# server_env prints the environment bitvaultd runs with.
server_env() {
  cat <<EOF
export BITVAULT_HTTP_ADDR=127.0.0.1:$HTTP_PORT
export BITVAULT_DATA_DIR=$STATE/data
export BITVAULT_DATABASE_URL='postgres://bitvault_app:$APP_DB_PW@127.0.0.1:$PG_PORT/$DB?sslmode=disable'
export BITVAULT_DATABASE_OWNER_URL='postgres://bitvault_owner:$OWNER_DB_PW@127.0.0.1:$PG_PORT/$DB?sslmode=disable'
export BITVAULT_TOKEN_KEY='$TOKEN_KEY'
export BITVAULT_PROFILE=lite
export BITVAULT_STORAGE=$STORAGE
EOF
  if [ "$STORAGE" = s3 ]; then
    cat <<EOF
export BITVAULT_S3_ENDPOINT=http://127.0.0.1:$S3_PORT
export BITVAULT_S3_REGION=us-east-1
export BITVAULT_S3_BUCKET=$BUCKET
export BITVAULT_S3_ACCESS_KEY_ID='$S3_ACCESS'
export BITVAULT_S3_SECRET_ACCESS_KEY='$S3_SECRET'
EOF
  else
    cat <<EOF
export BITVAULT_STORAGE_DIR=$STATE/objects
export BITVAULT_PUBLIC_URL=http://127.0.0.1:$HTTP_PORT
EOF
  fi
}

build() {
  mkdir -p "$STATE/bin"
  log "building bitvaultd and bitvault into $STATE/bin"
  (cd "$ROOT/service" && go build -o "$STATE/bin/" ./cmd/bitvaultd ./cmd/bitvault)
}

start_server() {
  mkdir -p "$STATE/data"
  server_env >"$STATE/server.env"
  chmod 600 "$STATE/server.env"
  # shellcheck disable=SC1091
  . "$STATE/server.env"
  # A running bitvaultd is replaced by the fresh build; stop it before migrating (a migration
  # racing the old server's queries can deadlock).
  if pid_alive "$STATE/bitvaultd.pid"; then
    log "bitvaultd already running (pid $(cat "$STATE/bitvaultd.pid")); restarting with the new build"
    stop_pid "$STATE/bitvaultd.pid"
  fi
  # Migrations first (as the owner), then the app role's password (the migrations create the role).
  "$STATE/bin/bitvaultd" migrate >"$STATE/migrate.log" || die "migrate failed: $(tail -3 "$STATE/migrate.log")"
  psql_super -d postgres -c "ALTER ROLE bitvault_app PASSWORD '$APP_DB_PW'"
  log "starting bitvaultd on http://127.0.0.1:$HTTP_PORT (log $STATE/bitvaultd.log)"
  nohup "$STATE/bin/bitvaultd" serve >>"$STATE/bitvaultd.log" 2>&1 &
  echo $! >"$STATE/bitvaultd.pid"
  for _ in $(seq 150); do
    if curl -sf -o /dev/null "http://127.0.0.1:$HTTP_PORT/readyz"; then return; fi
    pid_alive "$STATE/bitvaultd.pid" || die "bitvaultd exited: $(tail -5 "$STATE/bitvaultd.log")"
    sleep 0.2
  done
  die "bitvaultd not ready: $(curl -s "http://127.0.0.1:$HTTP_PORT/readyz")"
}

create_tenant() {
  # shellcheck disable=SC1091
  . "$STATE/server.env"
  local exists
  exists=$(psql_super -d "$DB" -tAc "SELECT 1 FROM tenants WHERE slug = '$TENANT'")
  if [ "$exists" = 1 ]; then
    log "tenant $TENANT exists"
    return
  fi
  log "creating tenant $TENANT with owner $EMAIL"
  printf '%s\n' "$USER_PW" | "$STATE/bin/bitvaultd" admin create-tenant --slug "$TENANT" --name "Dev tenant" \
    --owner-email "$EMAIL" --owner-name "Dev Owner" >"$STATE/create-tenant.log" ||
    die "create-tenant failed: $(cat "$STATE/create-tenant.log")"
  NEW_PW=1
}

stop_pid() {
  local f=$1
  if pid_alive "$f"; then
    local pid; pid=$(cat "$f")
    kill -TERM "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  fi
  rm -f "$f"
}

stop_all() {
  [ -e "$PGDIR" ] && PGDIR=$(readlink -f "$PGDIR") && PGDATA=$PGDIR/data SOCK=$PGDIR/sock
  stop_pid "$STATE/bitvaultd.pid" && log "bitvaultd stopped"
  stop_pid "$STATE/s3/pid" && log "versitygw stopped"
  if [ -f "$PGDATA/postmaster.pid" ]; then
    as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null && log "postgres stopped"
  fi
}

status() {
  [ -e "$PGDIR" ] && PGDIR=$(readlink -f "$PGDIR") && PGDATA=$PGDIR/data SOCK=$PGDIR/sock
  pid_alive "$STATE/bitvaultd.pid" && echo "bitvaultd: running (pid $(cat "$STATE/bitvaultd.pid")) http://127.0.0.1:$HTTP_PORT" || echo "bitvaultd: stopped"
  pid_alive "$STATE/s3/pid" && echo "versitygw: running (pid $(cat "$STATE/s3/pid")) http://127.0.0.1:$S3_PORT" || echo "versitygw: stopped"
  as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1 && echo "postgres: running 127.0.0.1:$PG_PORT" || echo "postgres: stopped"
}

print_howto() {
  local cli="$STATE/bin/bitvault" srv="http://127.0.0.1:$HTTP_PORT"
  if [ "${NEW_PW:-}" = 1 ] && [ -z "${BITVAULT_DEV_PASSWORD:-}" ]; then
    echo "Owner password (generated, shown once; also in $STATE/secrets.env as USER_PW): $USER_PW"
  fi
  cat <<EOF

BitVault dev stack is up: $srv (storage: $STORAGE, state: $STATE)
Try:
  export PATH=$STATE/bin:\$PATH BITVAULT_SERVER=$srv
  echo "\$PASSWORD" | bitvault login --tenant $TENANT --email $EMAIL --password-stdin
  echo hello > /tmp/hello.txt && bitvault put /tmp/hello.txt /docs/hello.txt
  bitvault ls /docs
  bitvault get /docs/hello.txt /tmp/hello.back && cmp /tmp/hello.txt /tmp/hello.back
  bitvault share /docs/hello.txt other@example.com   # needs a second user in the tenant
  bitvault link /docs/hello.txt
  bitvault search hello
  bitvault sync /tmp/bitvault-sync
Stop with: $0 stop
EOF
  : "$cli"
}

cmd=${1:-start}
case "$cmd" in
  start)
    load_secrets
    start_pg
    start_s3
    build
    start_server
    create_tenant
    print_howto
    ;;
  stop) stop_all ;;
  status) status ;;
  env) load_secrets; server_env ;;
  reset)
    stop_all
    [ -L "$STATE/pg" ] && rm -rf "$(readlink -f "$STATE/pg")"
    rm -rf "$STATE"
    log "removed $STATE"
    ;;
  *) die "usage: $0 [start|stop|status|env|reset]" ;;
esac
