#!/usr/bin/env bash
# Runs every check and test of Sluice: formatting, clippy with warnings denied, and the whole
# test suite (unit tests, RFC test vectors, interop with independent implementations, and the
# replay of every fuzz seed corpus through the parsers). Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "toolchain components"
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  rustup component add rustfmt clippy
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test"
cargo test --workspace --locked

step "browser tests"
./scripts/browser-test.sh

printf '\nAll checks passed.\n'
