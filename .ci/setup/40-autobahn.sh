#!/usr/bin/env bash
# Installs the Autobahn|Testsuite (`wstest`, Python 2) that tests/autobahn.rs runs against our echo
# server and client. Idempotent: quick when the virtualenv already works.
#
# The suite needs CPython 2.7 (pyenv's on this image) and a virtualenv with old, pinned packages:
# the newest releases of its dependencies dropped Python 2. The venv lives outside the repo so a
# `cargo clean` or a fresh clone does not rebuild it; tests/autobahn.rs looks in the same place
# (override both with AUTOBAHN_VENV).
set -euo pipefail

VENV="${AUTOBAHN_VENV:-$HOME/.cache/ws_stream_mux/autobahn-venv}"
PY2="${AUTOBAHN_PYTHON2:-$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")/versions/2.7.18/bin/python}"

if [ -x "$VENV/bin/wstest" ] && "$VENV/bin/python" -c 'import autobahntestsuite' 2>/dev/null; then
    echo "autobahn: $VENV is ready"
    exit 0
fi

if [ ! -x "$PY2" ]; then
    echo "autobahn: no CPython 2.7 at $PY2; tests/autobahn.rs will report that it cannot run" >&2
    exit 0
fi

# The C extensions of autobahn[accelerate] (wsaccel, ujson) need a compiler.
if ! command -v cc >/dev/null; then
    apt-get update
    apt-get install -y --no-install-recommends build-essential
fi

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_PYTHON_VERSION_WARNING=1
"$PY2" -m pip install --quiet 'virtualenv<20.22'
rm -rf "$VENV"
mkdir -p "$(dirname "$VENV")"
"$PY2" -m virtualenv --quiet "$VENV"
"$VENV/bin/pip" install --quiet setuptools==44.1.1
"$VENV/bin/pip" install --quiet \
    txaio==2.1.0 incremental==16.10.1 pyOpenSSL==19.1.0 cryptography==3.3.2 Twisted==19.10.0 \
    zope.interface==4.6.0 jinja2==2.11.3 markupsafe==1.1.1 Werkzeug==1.0.1 klein==17.10.0 \
    service_identity==18.1.0 unittest2==1.1.0 six==1.16.0 'autobahn[twisted,accelerate]==0.10.9' \
    autobahntestsuite==25.10.1
"$VENV/bin/python" -c 'import autobahntestsuite'
echo "autobahn: installed wstest in $VENV"
