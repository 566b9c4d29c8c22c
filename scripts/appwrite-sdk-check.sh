#!/usr/bin/env bash
# Runs the official Appwrite Node SDK (node-appwrite, from npm) against the Appwrite stand-in,
# making the calls AppwriteRemoteStore makes: remote-cache-sync/tests/appwrite-sdk/crosscheck.mjs;
# and the official web SDK's realtime (appwrite, with the ws package as Node 20's WebSocket)
# against the stand-in's /v1/realtime: realtime.mjs.
# Needs the variables scripts/start-appwrite.sh prints. Installs Node.js with apt-get when it is
# missing (as root on Debian) and the SDK with npm.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="$ROOT/remote-cache-sync/tests/appwrite-sdk"
: "${RCS_TEST_APPWRITE_ENDPOINT:?run scripts/start-appwrite.sh first}"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >&2
        apt-get install -y -qq --no-install-recommends nodejs npm >&2
    else
        echo "appwrite-sdk-check: node and npm are required" >&2
        exit 1
    fi
fi
cd "$DIR"
npm install --no-audit --no-fund --silent >&2
# --test-force-exit: the web SDK's realtime client keeps its heartbeat timer (and a reconnecting
# socket) alive after the last unsubscribe, so the test process would never end on its own.
node --test --test-force-exit crosscheck.mjs realtime.mjs
