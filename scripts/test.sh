#!/usr/bin/env bash
# The whole test suite, with all set-up, on a fresh Debian machine with the Rust toolchain:
# starts a throwaway PostgreSQL cluster, PocketBase server and Appwrite stand-in on 127.0.0.1
# (installing them when missing), runs every test of the workspace with every feature against
# them, runs the official Appwrite Node SDK against the stand-in, and stops them.
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
    if [ -f "$ENV_DIR/pocketbase.env" ]; then
        (. "$ENV_DIR/pocketbase.env" && bash scripts/stop-pocketbase.sh) >/dev/null 2>&1 || true
    fi
    if [ -f "$ENV_DIR/postgres.env" ]; then
        (. "$ENV_DIR/postgres.env" && bash scripts/stop-postgres.sh) >/dev/null 2>&1 || true
    fi
    rm -rf "$ENV_DIR"
}
trap cleanup EXIT

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
# Backend tests fail instead of skipping when their server is expected.
export RCS_TEST_REQUIRE_SERVERS=1

echo "== cargo test --workspace --all-features"
cargo test --workspace --all-features "$@"

echo "== the official Appwrite SDK (node-appwrite) against the stand-in"
bash scripts/appwrite-sdk-check.sh

echo "== the library in the browser (wasm32, headless Chromium)"
bash scripts/test-wasm.sh
