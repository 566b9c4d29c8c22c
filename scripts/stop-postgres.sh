#!/usr/bin/env bash
# Stops the throwaway cluster started by scripts/start-postgres.sh and deletes its directory.
#
# Usage: scripts/stop-postgres.sh [CLUSTER_DIR]
# CLUSTER_DIR defaults to $RCS_TEST_PG_DIR, then $RCS_PG_DIR, then $TMPDIR/rcs-test-pg.
# Set RCS_PG_KEEP=1 to stop the server but keep the files (server.log is in the directory).
# Safe to run when nothing is running.
set -euo pipefail

PG_DIR="${1:-${RCS_TEST_PG_DIR:-${RCS_PG_DIR:-${TMPDIR:-/tmp}/rcs-test-pg}}}"
STATE="$PG_DIR/state.env"

if [ ! -d "$PG_DIR" ]; then
    echo "stop-postgres: nothing at $PG_DIR" >&2
    exit 0
fi
if [ ! -f "$STATE" ] && [ ! -d "$PG_DIR/data" ]; then
    echo "stop-postgres: $PG_DIR is not a cluster made by start-postgres.sh; leaving it alone" >&2
    exit 1
fi

if [ -f "$PG_DIR/data/postmaster.pid" ]; then
    bindir="$(sed -n 's/^bindir=//p' "$STATE" 2>/dev/null || true)"
    owner="$(sed -n 's/^owner=//p' "$STATE" 2>/dev/null || true)"
    pg_ctl="${bindir:+$bindir/}pg_ctl"
    if [ "$(id -u)" = 0 ] && [ -n "$owner" ] && [ "$owner" != root ]; then
        runuser -u "$owner" -- "$pg_ctl" -D "$PG_DIR/data" stop -m fast -w >/dev/null 2>&1 || true
    else
        "$pg_ctl" -D "$PG_DIR/data" stop -m fast -w >/dev/null 2>&1 || true
    fi
    echo "stop-postgres: stopped cluster in $PG_DIR" >&2
fi

if [ "${RCS_PG_KEEP:-}" != 1 ]; then
    rm -rf "$PG_DIR"
fi
