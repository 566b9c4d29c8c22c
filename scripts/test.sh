#!/usr/bin/env bash
# The whole test suite, with all set-up, on a fresh Debian machine with the Rust toolchain:
# starts a throwaway PostgreSQL cluster, PocketBase server and the Supabase and Appwrite
# stand-ins on 127.0.0.1 (installing them when missing), runs every test of the workspace with
# every feature against them, runs the official @supabase/supabase-js client and the official
# Appwrite Node SDK (node-appwrite) against the stand-ins, and stops them.
#
#   bash scripts/test.sh [extra cargo test args]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
ENV_DIR="$(mktemp -d)"

cleanup() {
    if [ -f "$ENV_DIR/appwrite.env" ]; then
        (. "$ENV_DIR/appwrite.env" && bash scripts/stop-appwrite.sh) >/dev/null 2>&1 || true
    fi
    if [ -f "$ENV_DIR/supabase.env" ]; then
        (. "$ENV_DIR/supabase.env" && bash scripts/stop-supabase.sh) >/dev/null 2>&1 || true
    fi
    if [ -f "$ENV_DIR/pocketbase.env" ]; then
        (. "$ENV_DIR/pocketbase.env" && bash scripts/stop-pocketbase.sh) >/dev/null 2>&1 || true
    fi
    if [ -f "$ENV_DIR/postgres.env" ]; then
        (. "$ENV_DIR/postgres.env" && bash scripts/stop-postgres.sh) >/dev/null 2>&1 || true
    fi
    rm -rf "$ENV_DIR"
}
trap cleanup EXIT

bash scripts/build-deps.sh
echo "== starting PostgreSQL"
bash scripts/start-postgres.sh "$ENV_DIR/postgres.env"
echo "== starting PocketBase"
bash scripts/start-pocketbase.sh "$ENV_DIR/pocketbase.env"
echo "== starting the Appwrite stand-in"
bash scripts/start-appwrite.sh "$ENV_DIR/appwrite.env"
# shellcheck disable=SC1091
. "$ENV_DIR/appwrite.env"
# shellcheck disable=SC1091
. "$ENV_DIR/postgres.env"
# shellcheck disable=SC1091
. "$ENV_DIR/pocketbase.env"
echo "== starting the Supabase stand-in"
bash scripts/start-supabase.sh "$ENV_DIR/supabase.env"
# shellcheck disable=SC1091
. "$ENV_DIR/supabase.env"
# Backend tests fail instead of skipping when their server is expected.
export RCS_TEST_REQUIRE_SERVERS=1

echo "== installing the official supabase-js client"
SUPABASE_JS="${RCS_SUPABASE_JS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rcs/supabase-js}"
if [ ! -d "$SUPABASE_JS/node_modules/@supabase/supabase-js" ]; then
    command -v npm >/dev/null 2>&1 || {
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq && apt-get install -y -qq --no-install-recommends nodejs npm
    }
    mkdir -p "$SUPABASE_JS"
    (cd "$SUPABASE_JS" && npm install --no-audit --no-fund --silent @supabase/supabase-js@2.119.0)
fi
# tests/supabase_js_requests.rs compares the adapter's requests with the ones supabase-js builds.
export RCS_SUPABASE_JS_NODE_PATH="$SUPABASE_JS/node_modules"

echo "== cargo test --workspace --all-features"
cargo test --workspace --all-features "$@"

echo "== the official supabase-js client against the stand-in"
NODE_PATH="$SUPABASE_JS/node_modules" node scripts/supabase-js-check.mjs

echo "== the official Appwrite SDK (node-appwrite) against the stand-in"
bash scripts/appwrite-sdk-check.sh

# The browser suite (wasm32, headless Chromium) is scripts/test-web.sh, which .ci/run runs next.
