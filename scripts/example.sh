#!/usr/bin/env bash
# Sets up a fresh machine, builds ponder, and grades the bundled example task (a real bug fix
# from a PyPI release of requests) twice: with its fix (resolves) and with no patch (does not).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --locked -p ponder-cli
ponder=target/release/ponder
$ponder eval --dataset examples/tasks/tasks.jsonl --gold --run-dir runs/example-gold "$@"
$ponder eval --dataset examples/tasks/tasks.jsonl --empty --run-dir runs/example-empty "$@"
echo "example: reports in runs/example-gold/report.json and runs/example-empty/report.json"
