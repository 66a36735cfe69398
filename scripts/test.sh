#!/usr/bin/env bash
# The whole test suite: setup, formatting, lints, then every test of every crate.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  echo "test: cargo-nextest not found, using cargo test" >&2
  cargo test --workspace --no-fail-fast
fi
