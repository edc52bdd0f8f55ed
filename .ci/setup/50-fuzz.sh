#!/usr/bin/env bash
# Installs cargo-fuzz, the cargo subcommand that builds the fuzz targets of fuzz/ with libFuzzer
# and runs them (.ci/fuzz-smoke). Idempotent: quick when it is already installed.
#
# The targets need nightly's -Z flags (sanitizers, coverage instrumentation). .ci/fuzz-smoke uses
# the nightly toolchain when rustup has one, and otherwise the default toolchain with
# RUSTC_BOOTSTRAP=1, so a machine with only stable Rust can run it too; cargo-fuzz itself builds
# with any toolchain.
set -euo pipefail

if cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: $(cargo fuzz --version) is installed"
    exit 0
fi
echo "-- cargo install cargo-fuzz"
cargo install cargo-fuzz --locked --version '^0.13'
cargo fuzz --version
