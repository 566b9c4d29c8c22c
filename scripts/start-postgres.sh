#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster for the tests, listening on 127.0.0.1 on a free port.
#
# Usage: scripts/start-postgres.sh [ENV_FILE]
#
# Prints (or writes to ENV_FILE) shell lines to `eval`/`source`:
#   export RCS_TEST_PG_URL=postgres://rcs:<password>@127.0.0.1:<port>/rcs_test
#   export RCS_TEST_PG_DIR=<cluster dir>          (what scripts/stop-postgres.sh stops)
#   export RCS_TEST_PG_CA=<cluster dir>/ca.crt    (when openssl exists: the server also speaks TLS
#                                                  with this self-signed certificate for 127.0.0.1)
#
# - Installs Debian's `postgresql` package with apt-get when no `initdb` can be found.
# - The cluster lives in $RCS_PG_DIR (default: $TMPDIR/rcs-test-pg). If a cluster started by this
#   script is already running there, it is reused (idempotent, ~50 ms).
# - PostgreSQL refuses to run as root: when run as root the cluster is owned by and run as the
#   `postgres` user (created when missing).
# - Tuned for tests, not durability (fsync off). Never point it at data you care about.
# - Auth: scram-sha-256 on TCP with a random password (so tests can check bad-password handling),
#   trust on the cluster's private Unix socket directory.
set -euo pipefail

log() { echo "start-postgres: $*" >&2; }

PG_DIR="${RCS_PG_DIR:-${TMPDIR:-/tmp}/rcs-test-pg}"
ENV_FILE="${1:-}"
DB_NAME="rcs_test"
# Bump when the cluster's setup changes, so an older running cluster is replaced, not reused.
FORMAT=2
DB_USER="rcs"

find_bindir() {
    if command -v pg_config >/dev/null 2>&1; then
        local d
        d="$(pg_config --bindir 2>/dev/null || true)"
        if [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/postgres" ]; then
            echo "$d"
            return 0
        fi
    fi
    local d
    # Highest installed major version first.
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -n -r); do
        if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
            echo "$d"
            return 0
        fi
    done
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(command -v initdb)"
        return 0
    fi
    return 1
}

BINDIR="$(find_bindir || true)"
if [ -z "$BINDIR" ]; then
    if [ "$(id -u)" != 0 ]; then
        log "PostgreSQL is not installed and we are not root; install Debian's 'postgresql' package"
        exit 1
    fi
    log "installing PostgreSQL with apt-get (a minute)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends postgresql >&2
    BINDIR="$(find_bindir)" || { log "initdb still not found after installing postgresql"; exit 1; }
fi

# Run a command as the cluster owner.
if [ "$(id -u)" = 0 ]; then
    OWNER=postgres
    if ! id -u "$OWNER" >/dev/null 2>&1; then
        log "creating system user $OWNER"
        useradd --system --no-create-home --shell /usr/sbin/nologin "$OWNER" 2>/dev/null \
            || useradd -r -M -s /bin/false "$OWNER"
    fi
    as_owner() { runuser -u "$OWNER" -- "$@"; }
else
    OWNER="$(id -un)"
    as_owner() { "$@"; }
fi

DATA="$PG_DIR/data"
SOCK="$PG_DIR/sock"
STATE="$PG_DIR/state.env"

emit() {
    local port password
    port="$(sed -n 's/^port=//p' "$STATE")"
    password="$(cat "$PG_DIR/password")"
    local out
    out="export RCS_TEST_PG_URL=postgres://$DB_USER:$password@127.0.0.1:$port/$DB_NAME
export RCS_TEST_PG_DIR=$PG_DIR"
    if [ -f "$PG_DIR/ca.crt" ]; then
        out="$out
export RCS_TEST_PG_CA=$PG_DIR/ca.crt"
    fi
    if [ -n "$ENV_FILE" ]; then
        (umask 077; printf '%s\n' "$out" >"$ENV_FILE")
        log "wrote $ENV_FILE (cluster $PG_DIR, port $port)"
    else
        printf '%s\n' "$out"
    fi
}

is_running() {
    [ -f "$STATE" ] && [ "$(sed -n 's/^format=//p' "$STATE")" = "$FORMAT" ] \
        && [ -f "$DATA/postmaster.pid" ] && as_owner "$BINDIR/pg_ctl" -D "$DATA" status >/dev/null 2>&1
}

if is_running; then
    port="$(sed -n 's/^port=//p' "$STATE")"
    if as_owner "$BINDIR/pg_isready" -q -h "$SOCK" -p "$port" 2>/dev/null \
        || "$BINDIR/pg_isready" -q -h 127.0.0.1 -p "$port"; then
        log "reusing running cluster in $PG_DIR"
        emit
        exit 0
    fi
fi

# Fresh cluster (also recovers from a half-finished earlier run).
if [ -f "$DATA/postmaster.pid" ]; then
    as_owner "$BINDIR/pg_ctl" -D "$DATA" stop -m immediate >/dev/null 2>&1 || true
fi
rm -rf "$PG_DIR"
mkdir -p "$PG_DIR" "$SOCK"
chmod 700 "$PG_DIR"
# 24 random hex chars: URL-safe, never needs escaping.
password="$(od -An -tx1 -N12 /dev/urandom | tr -d ' \n')"
(umask 077; printf '%s' "$password" >"$PG_DIR/password"; printf '%s\n' "$password" >"$PG_DIR/pwfile")
if [ "$(id -u)" = 0 ]; then
    chown -R "$OWNER" "$PG_DIR"
fi

log "initdb in $DATA ($BINDIR)"
as_owner "$BINDIR/initdb" -D "$DATA" -U "$DB_USER" --pwfile="$PG_DIR/pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 --no-sync >/dev/null 2>"$PG_DIR/initdb.log" \
    || as_owner "$BINDIR/initdb" -D "$DATA" -U "$DB_USER" --pwfile="$PG_DIR/pwfile" \
        --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C --no-sync >/dev/null 2>"$PG_DIR/initdb.log" \
    || { cat "$PG_DIR/initdb.log" >&2; exit 1; }
rm -f "$PG_DIR/pwfile"

cat >>"$DATA/postgresql.conf" <<EOF

# rcs test cluster
listen_addresses = '127.0.0.1'
unix_socket_directories = '$SOCK'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
log_min_messages = warning
logging_collector = off
EOF

# TLS with a throwaway CA and a server certificate for 127.0.0.1/localhost, so that
# sslmode=require (with certificate verification) can be tested.
make_certs() {
    local d="$PG_DIR/tls" ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
    mkdir -p "$d"
    # shellcheck disable=SC2086
    openssl req -x509 $ec -keyout "$d/ca.key" -out "$d/ca.crt" -days 30 -subj "/CN=rcs test CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" &&
    # shellcheck disable=SC2086
    openssl req $ec -keyout "$DATA/server.key" -out "$d/server.csr" -subj "/CN=localhost" &&
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n' >"$d/ext.cnf" &&
    openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
        -out "$DATA/server.crt" -days 30 -extfile "$d/ext.cnf"
}
if command -v openssl >/dev/null 2>&1; then
    if make_certs >/dev/null 2>&1; then
        chmod 600 "$DATA/server.key"
        cp "$PG_DIR/tls/ca.crt" "$PG_DIR/ca.crt"
        rm -rf "$PG_DIR/tls"
        if [ "$(id -u)" = 0 ]; then
            chown "$OWNER" "$DATA/server.key" "$DATA/server.crt" "$PG_DIR/ca.crt"
        fi
        printf "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n" >>"$DATA/postgresql.conf"
    else
        rm -rf "$PG_DIR/tls" "$DATA/server.key" "$DATA/server.crt"
        log "openssl could not make certificates; TLS stays off"
    fi
fi

free_port() {
    # A random port in 20000..59999 that nothing listens on (checked with bash's /dev/tcp).
    local p i
    for i in $(seq 1 50); do
        p=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

started=""
for attempt in 1 2 3 4 5; do
    port="$(free_port)"
    if as_owner "$BINDIR/pg_ctl" -D "$DATA" -l "$PG_DIR/server.log" -o "-p $port" -w -t 30 start >/dev/null 2>&1; then
        started=1
        break
    fi
    log "start on port $port failed (attempt $attempt), retrying"
done
if [ -z "$started" ]; then
    tail -n 20 "$PG_DIR/server.log" >&2 || true
    exit 1
fi
printf 'port=%s\nbindir=%s\nowner=%s\nformat=%s\n' "$port" "$BINDIR" "$OWNER" "$FORMAT" >"$STATE"

as_owner "$BINDIR/createdb" -h "$SOCK" -p "$port" -U "$DB_USER" "$DB_NAME"
log "PostgreSQL $("$BINDIR/postgres" --version | awk '{print $3}') running on 127.0.0.1:$port (cluster $PG_DIR)"
emit
