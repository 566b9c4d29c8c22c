#!/usr/bin/env bash
# Starts the Appwrite-compatible test server (`rcs appwrite-standin`, see
# remote_cache_sync::testing::appwrite) on 127.0.0.1 (free port, temporary data folder) and
# applies docs/backends/appwrite.md to it (through scripts/appwrite_setup.py).
#
# Usage: scripts/start-appwrite.sh [ENV_FILE]
#
# Prints (or writes to ENV_FILE) shell lines to `eval`/`source`:
#   export RCS_TEST_APPWRITE_ENDPOINT=http://127.0.0.1:<port>/v1
#   export RCS_TEST_APPWRITE_PROJECT=<project id>
#   export RCS_TEST_APPWRITE_KEY=<random API key>
#   export RCS_TEST_APPWRITE_DIR=<data dir>      (what scripts/stop-appwrite.sh stops)
#
# No real Appwrite can run here (it needs Docker, MariaDB and Redis): the stand-in copies the
# documented behaviour the adapter uses. Builds `rcs` (debug) when needed.
set -euo pipefail

log() { echo "start-appwrite: $*" >&2; }

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
GUIDE="$ROOT/docs/backends/appwrite.md"
ENV_FILE="${1:-}"
PY="$(command -v python3 || true)"
[ -n "$PY" ] || { log "python3 is required"; exit 1; }

(cd "$ROOT" && cargo build -q -p rcs >&2)
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/rcs"

DIR="$(mktemp -d "${TMPDIR:-/tmp}/rcs-test-aw.XXXXXX")"
PROJECT="rcs-test"
KEY="$("$PY" -c 'import secrets; print(secrets.token_hex(24))')"

RCS_STANDIN_APPWRITE_KEY="$KEY" setsid "$BIN" appwrite-standin --listen 127.0.0.1:0 \
    --data "$DIR/standin.db" --project "$PROJECT" >"$DIR/out.log" 2>"$DIR/err.log" </dev/null &
echo $! > "$DIR/standin.pid"

ENDPOINT=""
for _ in $(seq 1 100); do
    ENDPOINT="$(sed -n 's/^listening: //p' "$DIR/out.log" | head -1)"
    [ -n "$ENDPOINT" ] && break
    if ! kill -0 "$(cat "$DIR/standin.pid")" 2>/dev/null; then
        log "the stand-in exited; log:"; cat "$DIR/err.log" >&2; exit 1
    fi
    sleep 0.1
done
[ -n "$ENDPOINT" ] || { log "the stand-in did not start"; exit 1; }

RCS_TEST_APPWRITE_PROJECT="$PROJECT" RCS_TEST_APPWRITE_KEY="$KEY" \
    "$PY" "$ROOT/scripts/appwrite_setup.py" "$GUIDE" "${ENDPOINT%/v1}"
log "Appwrite stand-in on $ENDPOINT (data in $DIR)"

OUT="export RCS_TEST_APPWRITE_ENDPOINT=$ENDPOINT
export RCS_TEST_APPWRITE_PROJECT=$PROJECT
export RCS_TEST_APPWRITE_KEY=$KEY
export RCS_TEST_APPWRITE_DIR=$DIR"
if [ -n "$ENV_FILE" ]; then
    printf '%s\n' "$OUT" > "$ENV_FILE"
else
    printf '%s\n' "$OUT"
fi
