#!/usr/bin/env bash
# PostgreSQL 15 from Debian's packages (postgresql-15), in a private data directory on a free
# loopback port, password authentication only (scram-sha-256, also on the local socket), TLS with
# a certificate for 127.0.0.1 and localhost from a CA of this sandbox (clients verify it with
# sslmode=verify-full and SANDBOX_POSTGRES_CA, as they verify an RDS instance with its CA bundle).
# State: $SANDBOX_DIR/postgres (data/, tls/, the generated superuser password, the port, the log).
# PostgreSQL refuses to run as root: as root the cluster belongs to the `postgres` user the
# package creates, and every pg_ctl/initdb call runs as that user.
set -euo pipefail

: "${REPO_ROOT:?}" "${SANDBOX_DIR:?}"
. "$REPO_ROOT/sandbox/kube/lib.sh"

PG_VERSION=15
PG_BIN="${SANDBOX_POSTGRES_BIN:-/usr/lib/postgresql/$PG_VERSION/bin}"
P="$SANDBOX_DIR/postgres"
DATA="$P/data"
SOCKETS="$P/run"
LOG="$P/postgres.log"
ENV_FILE="$SANDBOX_DIR/env.d/25-postgres.env"
SUPERUSER=postgres
PY="${SANDBOX_PYTHON:-python3}"

die() { echo "25-postgres: $*" >&2; exit 1; }

# The account the server runs as: `postgres` when we are root, else ourselves.
if [[ $(id -u) -eq 0 ]]; then RUN_AS=postgres; else RUN_AS=""; fi

as_owner() { # run a command as the server's account
  if [[ -n "$RUN_AS" ]]; then runuser -u "$RUN_AS" -- "$@"; else "$@"; fi
}

install_postgres() {
  [[ -x "$PG_BIN/postgres" && -x "$PG_BIN/initdb" ]] && return 0
  [[ $(id -u) -eq 0 ]] || die "PostgreSQL $PG_VERSION is not installed ($PG_BIN/postgres missing) and installing it needs root: run \`apt-get install -y postgresql-$PG_VERSION\` as root, or set SANDBOX_POSTGRES_BIN to its bin directory"
  command -v apt-get >/dev/null || die "PostgreSQL $PG_VERSION is not installed and apt-get is not available: install postgresql-$PG_VERSION or set SANDBOX_POSTGRES_BIN"
  echo "25-postgres: installing postgresql-$PG_VERSION (apt-get)"
  # Debian's postinst would create and start a cluster of its own on 5432; only the binaries are wanted.
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y --no-install-recommends "postgresql-$PG_VERSION" >/dev/null 2>&1; then
    apt-get update >/dev/null
    apt-get install -y --no-install-recommends "postgresql-$PG_VERSION" >/dev/null \
      || die "apt-get install postgresql-$PG_VERSION failed"
  fi
  [[ -x "$PG_BIN/postgres" ]] || die "postgresql-$PG_VERSION installed but $PG_BIN/postgres is missing"
}

check_account() {
  [[ -z "$RUN_AS" ]] && return 0
  id "$RUN_AS" >/dev/null 2>&1 || die "running as root needs the '$RUN_AS' account (created by the postgresql-$PG_VERSION package)"
  # The account must reach the data directory through every parent directory.
  local parent
  parent="$(dirname "$P")"
  runuser -u "$RUN_AS" -- test -x "$parent" \
    || die "user '$RUN_AS' cannot enter $parent; PostgreSQL cannot run as root, so the sandbox directory's parents must be traversable (chmod o+x) or SANDBOX_DIR must live elsewhere"
}

# A CA of the sandbox and the server's certificate (SAN IP:127.0.0.1, DNS:localhost), made once.
make_certificates() {
  local tls="$P/tls"
  [[ -s "$tls/ca.crt" && -s "$tls/server.crt" && -s "$tls/server.key" ]] && return 0
  command -v openssl >/dev/null || die "openssl is needed to make the server's TLS certificate"
  mkdir -p "$tls"
  (
    umask 077
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
      -subj "/CN=genai.stack sandbox PostgreSQL CA" -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign" -keyout "$tls/ca.key" -out "$tls/ca.crt" >/dev/null 2>&1
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
      -keyout "$tls/server.key" -out "$tls/server.csr" >/dev/null 2>&1
    printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" "basicConstraints=CA:FALSE" \
      "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" >"$tls/server.ext"
    openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.crt" -CAkey "$tls/ca.key" -CAcreateserial -days 3650 \
      -extfile "$tls/server.ext" -out "$tls/server.crt" >/dev/null 2>&1
  ) || die "openssl could not make the TLS certificates in $tls"
  chmod 644 "$tls/ca.crt" "$tls/server.crt"
  if [[ -n "$RUN_AS" ]]; then chown "$RUN_AS" "$tls" "$tls/server.key" "$tls/server.crt"; fi
}

running() { as_owner "$PG_BIN/pg_ctl" status -D "$DATA" >/dev/null 2>&1; }

ready() { "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" -d postgres -U "$SUPERUSER"; }

init_cluster() {
  [[ -s "$DATA/PG_VERSION" ]] && return 0
  local pwfile="$P/initdb.pw"
  rm -rf "$DATA"
  (umask 077; cat "$P/password" >"$pwfile")
  [[ -n "$RUN_AS" ]] && chown "$RUN_AS" "$pwfile"
  as_owner "$PG_BIN/initdb" -D "$DATA" -U "$SUPERUSER" --pwfile="$pwfile" --auth=scram-sha-256 \
    -E UTF8 --locale=C.UTF-8 >"$P/initdb.log" 2>&1 || { rm -f "$pwfile"; cat "$P/initdb.log" >&2; die "initdb failed"; }
  rm -f "$pwfile"
  echo "include_if_exists = 'sandbox.conf'" | as_owner tee -a "$DATA/postgresql.conf" >/dev/null
}

write_config() { # rewritten on each up; a sandbox favours speed over durability
  as_owner tee "$DATA/sandbox.conf" >/dev/null <<CONF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$SOCKETS'
password_encryption = 'scram-sha-256'
ssl = on
ssl_cert_file = '$P/tls/server.crt'
ssl_key_file = '$P/tls/server.key'
ssl_min_protocol_version = 'TLSv1.2'
max_connections = 50
shared_buffers = 32MB
fsync = off
synchronous_commit = off
full_page_writes = off
CONF
}

up() {
  install_postgres
  mkdir -p "$P" "$SANDBOX_DIR/env.d" "$SANDBOX_DIR/logs"
  check_account
  if [[ ! -s "$P/port" ]]; then free_port >"$P/port"; fi
  PORT="$(cat "$P/port")"
  if [[ ! -s "$P/password" ]]; then
    (umask 077; "$PY" -c 'import secrets; print(secrets.token_urlsafe(24))' >"$P/password")
  fi
  PASSWORD="$(cat "$P/password")"
  chmod 700 "$P"
  if [[ -n "$RUN_AS" ]]; then
    mkdir -p "$DATA" "$SOCKETS"; touch "$LOG"
    chown "$RUN_AS" "$P" "$DATA" "$SOCKETS" "$LOG"
    chown root "$P/password" "$P/port"
  fi
  mkdir -p "$SOCKETS"
  init_cluster
  make_certificates
  write_config
  ln -sfn "$LOG" "$SANDBOX_DIR/logs/postgres.log"
  if running; then
    # A sandbox started before its configuration changed (TLS came later) takes it without a restart.
    as_owner "$PG_BIN/pg_ctl" reload -D "$DATA" -s >/dev/null || true
  else
    # Own session, so the server outlives the shell that started it.
    as_owner setsid "$PG_BIN/pg_ctl" start -D "$DATA" -l "$LOG" -w -t 60 -s >/dev/null \
      || { tail -20 "$LOG" >&2; die "the server did not start"; }
  fi
  wait_for postgres 30 ready || { tail -20 "$LOG" >&2; die "the server does not answer on 127.0.0.1:$PORT"; }
  (umask 077; cat >"$ENV_FILE" <<ENV
export PGHOST=127.0.0.1
export PGPORT=$PORT
export PGUSER=$SUPERUSER
export PGPASSWORD="$PASSWORD"
export PGDATABASE=postgres
export SANDBOX_POSTGRES_CA="$P/tls/ca.crt"
export SANDBOX_POSTGRES_BIN="$PG_BIN"
ENV
)
}

down() {
  if [[ -s "$DATA/PG_VERSION" ]] && running; then
    as_owner "$PG_BIN/pg_ctl" stop -D "$DATA" -m fast -w -t 30 -s || true
  fi
  rm -f "$ENV_FILE"
}

status() {
  if [[ -s "$P/port" && -x "$PG_BIN/pg_isready" ]]; then
    PORT="$(cat "$P/port")"
    if ready 2>/dev/null; then
      echo "25-postgres: PostgreSQL $PG_VERSION running on 127.0.0.1:$PORT ($DATA)"
      return 0
    fi
  fi
  echo "25-postgres: PostgreSQL not running"; return 1
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
