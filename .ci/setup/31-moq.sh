#!/usr/bin/env bash
# Installs the Node peer of tests/interop_moq.rs (QMux against @moq/qmux 0.3.3): Node.js and npm
# if the machine lacks them, then `npm ci` of tests/interop_moq/package-lock.json into
# target/interop-moq/. The headless Chromium case loads the same files (see 20-peers.sh for
# Chromium itself). Idempotent: does nothing when the installed tree matches the lock file.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "installing Node.js and npm from Debian"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nodejs npm
fi

src=tests/interop_moq
dest=target/interop-moq
stamp="$dest/.installed-lock.sha256"
want=$(sha256sum "$src/package.json" "$src/package-lock.json" | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] &&
    [ -f "$dest/node_modules/@moq/qmux/package.json" ] &&
    [ -f "$dest/node_modules/@moq/web-socket-stream/package.json" ] &&
    [ -f "$dest/node_modules/ws/package.json" ]; then
    echo "@moq/qmux peer already installed in $dest"
    exit 0
fi

mkdir -p "$dest"
rm -f "$stamp"
cp "$src/package.json" "$src/package-lock.json" "$dest/"
# --ignore-scripts: none of the three packages has an install script to run.
(cd "$dest" && npm ci --ignore-scripts --no-audit --no-fund)
echo "$want" > "$stamp"
echo "@moq/qmux peer installed in $dest (node $(node --version))"
