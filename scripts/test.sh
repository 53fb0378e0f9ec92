#!/usr/bin/env bash
# Runs every check and test of Sluice: formatting, clippy with warnings denied, and the whole
# test suite (unit tests, RFC test vectors, interop with independent implementations, and the
# replay of every fuzz seed corpus through the parsers, the load generator against Sluice, the
# bare forwarder and Janus). Installs what it needs first (rustfmt, clippy, Janus, Chromium).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "toolchain components"
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  rustup component add rustfmt clippy
fi

step "rust-version covers the locked dependencies"
python3 scripts/check-rust-version.py

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "Janus (the peer SFU of the side-by-side tests), from Debian's packages"
if ! command -v janus >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    benches/janus/janus.sh install </dev/null
  else
    sudo benches/janus/janus.sh install </dev/null
  fi
fi

step "cargo test"
cargo test --workspace --locked

step "browser tests"
./scripts/browser-test.sh

printf '\nAll checks passed.\n'
