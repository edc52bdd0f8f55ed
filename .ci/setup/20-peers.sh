#!/usr/bin/env bash
# Installs the independent WebSocket peers of tests/wsio_peers.rs: the npm package `ws` (npm ci
# into tests/peers/node_modules), Python `websockets` (a venv in tests/peers/.venv) and Debian's
# Chromium. Idempotent, and quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/../.."
peers=tests/peers

# Node `ws`, exactly as locked.
if [ ! -f "$peers/node_modules/ws/package.json" ] ||
    ! cmp -s "$peers/package-lock.json" "$peers/node_modules/.ws-stream-mux-lock"; then
    echo "-- npm ci in $peers"
    (cd "$peers" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$peers/package-lock.json" "$peers/node_modules/.ws-stream-mux-lock"
fi

# Python `websockets`, in a venv of its own.
if ! "$peers/.venv/bin/python" -c 'import websockets' 2>/dev/null ||
    ! cmp -s "$peers/requirements.txt" "$peers/.venv/.ws-stream-mux-requirements"; then
    echo "-- python venv in $peers/.venv"
    python3 -m venv "$peers/.venv"
    "$peers/.venv/bin/pip" install --quiet --disable-pip-version-check -r "$peers/requirements.txt"
    cp "$peers/requirements.txt" "$peers/.venv/.ws-stream-mux-requirements"
fi

# Chromium, from Debian.
if ! command -v chromium >/dev/null 2>&1; then
    echo "-- apt-get install chromium"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
