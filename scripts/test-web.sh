#!/usr/bin/env bash
# The browser suite, with all set-up, on a fresh Debian machine with the Rust toolchain:
#
# 1. installs what is missing (idempotent): clang (SQLite's C for wasm), chromium and
#    chromium-driver, the wasm32-unknown-unknown target, and wasm-bindgen-cli at exactly the
#    version of the wasm-bindgen crate in Cargo.lock (a `cargo install`, a few minutes the first
#    time);
# 2. starts a real `rcs serve` on 127.0.0.1 (answering CORS for the test page's origin) and a
#    remote that answers garbage (scripts/web/bad-remote.py);
# 3. runs with wasm-bindgen-test in headless Chromium: tests/browser.rs (LocalStore conformance
#    in memory and on OPFS, persistence across reopen; in a dedicated worker),
#    tests/browser_main_thread.rs (no OPFS on a page's main thread), tests/browser_sync.rs
#    (offline writes then sync against `rcs serve`, bad answers as typed errors) and
#    tests/browser_encryption.rs (feature `encryption`: SQLite3 Multiple Ciphers on OPFS, no
#    plaintext in the file, wrong/missing key, rekey);
# 4. builds the JS package with `rcs web-setup --profile dev` and runs the example page in headless Chromium
#    through Playwright (scripts/web/example-test.mjs): a todo added offline syncs and a second
#    browser profile sees it; a screenshot is saved (its path is printed); then encryption at
#    rest through the JavaScript API (scripts/web/encryption-test.mjs).
#
#   bash scripts/test-web.sh [extra cargo test args, e.g. a test name]
#   RCS_WASM_CLIPPY=1 bash scripts/test-web.sh     # also lints the wasm32 build
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/web/setup.sh
. scripts/web/setup.sh
web_install_missing

WORK="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

features="sqlite,http,pocketbase,supabase,appwrite,testing,encryption"
if [ "${RCS_WASM_CLIPPY:-0}" = 1 ]; then
    echo "== cargo clippy (wasm32-unknown-unknown, features $features)"
    cargo clippy -p remote-cache-sync --target wasm32-unknown-unknown --no-default-features \
        --features "$features" --lib --test browser --test browser_main_thread \
        --test browser_sync --test browser_encryption -- -D warnings
    cargo clippy -p remote-cache-sync-web --target wasm32-unknown-unknown -- -D warnings
fi

echo "== building rcs"
cargo build -p rcs
RCS="${CARGO_TARGET_DIR:-$ROOT/target}/debug/rcs"

# The page of wasm-bindgen-test-runner is served from a fixed port we pick, so `rcs serve` can be
# told its origin.
page_port="$(free_port)"
page_origin="http://127.0.0.1:$page_port"
token="web-test-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
echo "== starting rcs serve (CORS for $page_origin)"
RCS_SERVE_TOKENS="$token:records,owner=*" "$RCS" serve --listen 127.0.0.1:0 \
    --db "$WORK/server.sqlite" --cors-origin "$page_origin" >"$WORK/serve.out" 2>"$WORK/serve.log" &
pids+=($!)
remote_url="$(wait_for_line "$WORK/serve.out" 'listening: ' | sed 's/^listening: //')"
echo "== starting the bad remote"
python3 scripts/web/bad-remote.py "$WORK/bad.port" &
pids+=($!)
wait_for_file "$WORK/bad.port"
bad_url="http://127.0.0.1:$(cat "$WORK/bad.port")"

echo "== browser tests (headless Chromium)"
# No `-q`: the runner refuses `--quiet`. The URLs reach the tests at build time (`option_env!`).
RCS_TEST_REQUIRE_SERVERS=1 \
RCS_WEB_TEST_REMOTE="$remote_url" RCS_WEB_TEST_TOKEN="$token" RCS_WEB_TEST_GARBAGE="$bad_url" \
WASM_BINDGEN_TEST_ADDRESS="127.0.0.1:$page_port" \
CHROMEDRIVER="$(command -v chromedriver)" \
CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
    cargo test -p remote-cache-sync --target wasm32-unknown-unknown --no-default-features \
    --features "$features" --test browser --test browser_main_thread --test browser_sync --test browser_encryption "$@"

if [ -f scripts/web/example-test.mjs ]; then
    echo "== the example page in headless Chromium (Playwright)"
    bash scripts/web/example-test.sh "$RCS"
fi
