#!/usr/bin/env bash
# Sets up a fresh machine, builds ponder, and runs `ponder bench` with the simulated policy on
# the bundled example (four real bug fixes from PyPI releases): every strategy at budgets 1, 2
# and 4, each candidate checked and graded by running the projects' real tests. Prints the
# report's table and where the report is. Extra arguments go to `ponder bench`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --locked -p ponder-cli
target/release/ponder bench --policy sim --dataset examples/tasks/tasks.jsonl \
  --budgets 1,2,4 --workers 2 --run-dir runs/example-bench "$@"
echo "example: the report is runs/example-bench/report.html (and report.json beside it)"
