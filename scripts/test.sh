#!/usr/bin/env bash
# The whole test suite, with all set-up, on a fresh Debian machine with the Rust toolchain:
# starts a throwaway PostgreSQL cluster and PocketBase server on 127.0.0.1 (installing them when
# missing), runs every test of the workspace with every feature against them, and stops them.
#
#   bash scripts/test.sh [extra cargo test args]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
ENV_DIR="$(mktemp -d)"

cleanup() {
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
# shellcheck disable=SC1091
. "$ENV_DIR/postgres.env"
# shellcheck disable=SC1091
. "$ENV_DIR/pocketbase.env"
# Backend tests fail instead of skipping when their server is expected.
export RCS_TEST_REQUIRE_SERVERS=1

echo "== cargo test --workspace --all-features"
cargo test --workspace --all-features "$@"
# The browser suite (wasm32, headless Chromium) is scripts/test-web.sh, which .ci/run runs next.
