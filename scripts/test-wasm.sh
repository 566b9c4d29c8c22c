#!/usr/bin/env bash
# The library in a real browser: builds it for wasm32 (features sqlite, http, pocketbase, supabase,
# testing) and runs tests/browser.rs (in a dedicated worker, where OPFS lives) and
# tests/browser_main_thread.rs (a page) in headless Chromium with wasm-bindgen-test.
# RCS_WASM_CLIPPY=1 also lints the wasm32 build.
# Installs what is missing first (idempotent): clang (SQLite's C for wasm), chromium and
# chromium-driver, the wasm32-unknown-unknown target, and wasm-bindgen-cli at exactly the
# version of the wasm-bindgen crate in Cargo.lock (a `cargo install`, a few minutes the first
# time).
#
#   bash scripts/test-wasm.sh [extra cargo test args, e.g. a test name]
#   RCS_WASM_CLIPPY=1 bash scripts/test-wasm.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

missing=()
command -v clang >/dev/null || missing+=(clang)
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing ${missing[*]}"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    echo "== rustup target add wasm32-unknown-unknown"
    rustup target add wasm32-unknown-unknown
fi

# The test runner must match the wasm-bindgen crate exactly.
wb_version="$(awk '$0 == "name = \"wasm-bindgen\"" { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)"
if [ -z "$wb_version" ]; then
    echo "wasm-bindgen not found in Cargo.lock" >&2
    exit 1
fi
if [ "$(wasm-bindgen-test-runner --version 2>/dev/null || true)" != "wasm-bindgen-test-runner $wb_version" ]; then
    echo "== cargo install wasm-bindgen-cli $wb_version"
    cargo install wasm-bindgen-cli --version "$wb_version" --locked
fi

features="sqlite,http,pocketbase,supabase,testing"
# Lints of the wasm32 build are opt-in: a second (check) compile of every wasm dependency.
if [ "${RCS_WASM_CLIPPY:-0}" = 1 ]; then
    echo "== cargo clippy (wasm32-unknown-unknown, features $features)"
    cargo clippy -p remote-cache-sync --target wasm32-unknown-unknown --no-default-features \
        --features "$features" --lib --test browser --test browser_main_thread -- -D warnings
fi

echo "== browser tests (headless Chromium)"
# No `-q`: the runner refuses `--quiet`.
CHROMEDRIVER="$(command -v chromedriver)" \
CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
    cargo test -p remote-cache-sync --target wasm32-unknown-unknown --no-default-features \
    --features "$features" --test browser --test browser_main_thread "$@"
