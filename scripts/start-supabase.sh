#!/usr/bin/env bash
# Starts the Supabase stand-in (supabase-standin/: PostgREST and GoTrue behaviour over a real
# PostgreSQL) for the tests, on 127.0.0.1 and a free port, on a fresh database of the cluster
# that RCS_TEST_PG_URL names (start scripts/start-postgres.sh first), with
# docs/backends/supabase.md's SQL blocks applied verbatim.
#
# Usage: scripts/start-supabase.sh [ENV_FILE]
#
# Prints (or writes to ENV_FILE) shell lines to `eval`/`source`:
#   export RCS_TEST_SUPABASE_URL=http://127.0.0.1:<port>
#   export RCS_TEST_SUPABASE_ANON_KEY=<anon key (a JWT)>
#   export RCS_TEST_SUPABASE_SERVICE_KEY=<service_role key (a JWT)>
#   export RCS_TEST_SUPABASE_JWT_SECRET=<the HS256 secret>
#   export RCS_TEST_SUPABASE_DB_URL=<the stand-in's database> (tests hold transactions in it)
#   export RCS_TEST_SUPABASE_DIR=<run dir>       (what scripts/stop-supabase.sh stops)
set -euo pipefail

log() { echo "start-supabase: $*" >&2; }

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENV_FILE="${1:-}"
: "${RCS_TEST_PG_URL:?start PostgreSQL first (scripts/start-postgres.sh) and source its env}"

log "building the stand-in"
(cd "$ROOT" && cargo build -q -p rcs-supabase-standin >&2)
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/rcs-supabase-standin"

DIR="$(mktemp -d "${TMPDIR:-/tmp}/rcs-test-supa.XXXXXX")"
SECRET="$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')"
# setsid: the server outlives this script and the shell that eval'd it.
setsid "$BIN" --pg "$RCS_TEST_PG_URL" --guide "$ROOT/docs/backends/supabase.md" \
    --jwt-secret "$SECRET" >"$DIR/out" 2>"$DIR/log" </dev/null &
echo $! >"$DIR/pid"

READY=""
for _ in $(seq 1 300); do
    READY="$(grep -m1 '^READY ' "$DIR/out" 2>/dev/null || true)"
    [ -n "$READY" ] && break
    if ! kill -0 "$(cat "$DIR/pid")" 2>/dev/null; then
        log "the stand-in exited; log:"; cat "$DIR/log" >&2; exit 1
    fi
    sleep 0.1
done
[ -n "$READY" ] || { log "the stand-in did not start in 30 s"; cat "$DIR/log" >&2; exit 1; }
read -r _ PORT ANON SERVICE _ DB_URL <<<"$READY"
log "stand-in on http://127.0.0.1:$PORT (run dir $DIR)"

OUT="export RCS_TEST_SUPABASE_URL=http://127.0.0.1:$PORT
export RCS_TEST_SUPABASE_ANON_KEY=$ANON
export RCS_TEST_SUPABASE_SERVICE_KEY=$SERVICE
export RCS_TEST_SUPABASE_JWT_SECRET=$SECRET
export RCS_TEST_SUPABASE_DB_URL=$DB_URL
export RCS_TEST_SUPABASE_DIR=$DIR"
if [ -n "$ENV_FILE" ]; then
    (umask 077; printf '%s\n' "$OUT" >"$ENV_FILE")
else
    printf '%s\n' "$OUT"
fi
