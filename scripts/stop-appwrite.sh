#!/usr/bin/env bash
# Stops an Appwrite stand-in started by scripts/start-appwrite.sh and removes its data folder.
#
# Usage: scripts/stop-appwrite.sh [DIR]     (default: $RCS_TEST_APPWRITE_DIR)
set -euo pipefail

DIR="${1:-${RCS_TEST_APPWRITE_DIR:-}}"
if [ -z "$DIR" ]; then
    echo "stop-appwrite: no data dir given (argument or RCS_TEST_APPWRITE_DIR)" >&2
    exit 1
fi
case "$(basename "$DIR")" in
    rcs-test-aw.*) ;;
    *) echo "stop-appwrite: $DIR was not made by start-appwrite.sh" >&2; exit 1 ;;
esac
if [ -f "$DIR/standin.pid" ]; then
    PID="$(cat "$DIR/standin.pid")"
    if kill "$PID" 2>/dev/null; then
        for _ in $(seq 1 50); do
            kill -0 "$PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$PID" 2>/dev/null || true
    fi
fi
rm -rf "$DIR"
echo "stop-appwrite: stopped and removed $DIR" >&2
