#!/usr/bin/env bash
# Stops a PocketBase started by scripts/start-pocketbase.sh and removes its data folder.
#
# Usage: scripts/stop-pocketbase.sh [DIR]     (default: $RCS_TEST_POCKETBASE_DIR)
set -euo pipefail

DIR="${1:-${RCS_TEST_POCKETBASE_DIR:-}}"
if [ -z "$DIR" ]; then
    echo "stop-pocketbase: no data dir given (argument or RCS_TEST_POCKETBASE_DIR)" >&2
    exit 1
fi
case "$(basename "$DIR")" in
    rcs-test-pb.*) ;;
    *) echo "stop-pocketbase: $DIR was not made by start-pocketbase.sh" >&2; exit 1 ;;
esac
if [ -f "$DIR/pocketbase.pid" ]; then
    PID="$(cat "$DIR/pocketbase.pid")"
    if kill "$PID" 2>/dev/null; then
        for _ in $(seq 1 50); do
            kill -0 "$PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$PID" 2>/dev/null || true
    fi
fi
rm -rf "$DIR"
echo "stop-pocketbase: stopped and removed $DIR" >&2
