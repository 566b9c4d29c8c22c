#!/usr/bin/env bash
# Installs (when missing, idempotent) what `--all-features` builds need beyond the Rust toolchain:
# pkg-config and OpenSSL's headers (libssl-dev), which the `encryption` feature's SQLCipher
# links against. Sourced or run by scripts/test.sh and .ci/run.
set -euo pipefail
if command -v pkg-config >/dev/null 2>&1 && pkg-config --exists openssl 2>/dev/null; then
    exit 0
fi
echo "== installing pkg-config and libssl-dev (SQLCipher, feature encryption)"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends pkg-config libssl-dev >/dev/null
