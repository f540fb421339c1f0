#!/usr/bin/env bash
# The test command: starts every server the tests talk to (MariaDB, Redis, a three-master
# Redis Cluster, the Tansu Kafka broker; Python happybase for the HBase cross-check),
# then runs every test of the workspace against them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/python-venv.sh
bash scripts/redis-cluster.sh
if [ -f scripts/kafka.sh ]; then bash scripts/kafka.sh; fi
log=$(mktemp)
set +e
cargo test --workspace --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole workspace (cargo's last line is some crate's doc-tests).
grep -E '^test result:' "$log" | awk '{for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } } END { printf "tests: %d passed, %d failed\n", p, f }'
rm -f "$log"
exit "$status"
