#!/usr/bin/env bash
# Stops a stand-in started by scripts/start-supabase.sh and removes its run dir (its database
# stays in the test cluster, which scripts/stop-postgres.sh removes).
#
# Usage: scripts/stop-supabase.sh [DIR]     (default: $RCS_TEST_SUPABASE_DIR)
set -euo pipefail

DIR="${1:-${RCS_TEST_SUPABASE_DIR:-}}"
[ -n "$DIR" ] || { echo "stop-supabase: no run dir (argument or RCS_TEST_SUPABASE_DIR)" >&2; exit 1; }
case "$(basename "$DIR")" in
    rcs-test-supa.*) ;;
    *) echo "stop-supabase: $DIR was not made by start-supabase.sh" >&2; exit 1 ;;
esac
if [ -f "$DIR/pid" ]; then
    PID="$(cat "$DIR/pid")"
    if kill "$PID" 2>/dev/null; then
        for _ in $(seq 1 50); do
            kill -0 "$PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$PID" 2>/dev/null || true
    fi
fi
rm -rf "$DIR"
echo "stop-supabase: stopped and removed $DIR" >&2
