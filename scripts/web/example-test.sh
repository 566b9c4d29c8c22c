#!/usr/bin/env bash
# The example page of `rcs web-setup` in headless Chromium, driven by Playwright
# (scripts/web/example-test.mjs): a todo added while the remote is down syncs once it is up, a
# second browser profile sees it, a second tab on the same database gets `storage_locked`. Then
# encryption at rest through the same package (scripts/web/encryption-test.mjs): no plaintext in
# the OPFS file with a `key`, `wrong_key`/`key_required`, rekey.
# Installs playwright-core (npm, into target/web-node) when missing; uses Debian's Chromium.
#
#   bash scripts/web/example-test.sh [PATH_TO_RCS]      (default: target/debug/rcs)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
RCS="${1:-$ROOT/target/debug/rcs}"
NODE_DIR="$ROOT/target/web-node"
if [ ! -f "$NODE_DIR/node_modules/playwright-core/package.json" ]; then
    echo "== npm install playwright-core (into $NODE_DIR)"
    mkdir -p "$NODE_DIR"
    [ -f "$NODE_DIR/package.json" ] || echo '{"private":true}' >"$NODE_DIR/package.json"
    (cd "$NODE_DIR" && npm install --no-audit --no-fund --loglevel=error playwright-core@1.65.1)
fi
SITE="$(mktemp -d)"
trap 'rm -rf "$SITE"' EXIT
# The dev profile: its wasm32 dependencies are the ones the browser tests just built, so the
# package costs one crate's build instead of a second, optimised build of everything.
echo "== rcs web-setup --profile dev --dest $SITE"
"$RCS" web-setup --profile dev --dest "$SITE"
OUT="$ROOT/target/web-test"
mkdir -p "$OUT"
RCS_NODE_DIR="$NODE_DIR" node scripts/web/example-test.mjs "$SITE" "$RCS" "$OUT"
echo "== encryption at rest through the JavaScript API (headless Chromium, OPFS)"
RCS_NODE_DIR="$NODE_DIR" node scripts/web/encryption-test.mjs "$SITE"
