#!/usr/bin/env bash
# Installs the Node peers of the interop tests (tests/interop_matrixai.rs): Node.js and npm if the
# machine lacks them, then `npm ci` of tests/interop/package-lock.json into target/interop-node/.
# Idempotent: does nothing when the installed tree matches the lock file.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "installing Node.js and npm from Debian"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nodejs npm
fi

dest=target/interop-node
stamp="$dest/.installed-lock.sha256"
want=$(sha256sum tests/interop/package.json tests/interop/package-lock.json | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -d "$dest/node_modules/@matrixai/ws" ]; then
    echo "interop Node peers already installed in $dest"
    exit 0
fi

mkdir -p "$dest"
cp tests/interop/package.json tests/interop/package-lock.json "$dest/"
# --ignore-scripts: nothing here needs an install script (core-js only prints an advert).
(cd "$dest" && npm ci --ignore-scripts --no-audit --no-fund)
echo "$want" > "$stamp"
echo "interop Node peers installed in $dest (node $(node --version))"
