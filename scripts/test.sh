#!/usr/bin/env bash
# The test command: starts every server the tests talk to (MariaDB, Redis, the Tansu
# Kafka broker; Python happybase for the HBase cross-check), then runs every test of the
# workspace against them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/python-venv.sh
if [ -f scripts/kafka.sh ]; then bash scripts/kafka.sh; fi
cargo test --workspace --no-fail-fast 2>&1
