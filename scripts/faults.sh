#!/usr/bin/env bash
# The fault-injection suite, one command. Starts the servers it needs (idempotent, like
# scripts/test.sh: MariaDB, Redis, the shared Tansu broker; moto_server into .venv for the
# broker scenario's S3 storage), builds the release `reconciler` and `faults` binaries and
# runs the suite, which prints a table and rewrites the `## Fault injection` section of
# RELIABILITY.md.
#
#   scripts/faults.sh                          every scenario (about 10 minutes on 2 cores)
#   scripts/faults.sh --quick                  6 kills, 8 s outages, 1,000 races (about 14 minutes)
#   scripts/faults.sh --scenario kill,race     only these (kill, redis-down, hbase-down,
#                                              mariadb-down, broker-down, race, poison)
#   scripts/faults.sh --out -                  print only, leave RELIABILITY.md alone
#   scripts/faults.sh --broker-rate 10         changes/s of broker-down (its moto-backed
#                                              broker takes ~100 S3 requests/s)
#
# Bounded in time: the whole run is stopped after FAULTS_TIMEOUT seconds (default 3600).
# Every scenario uses its own databases (flt_<tag>_*), Redis keys (flt:<tag>:*), topics,
# HBase server and ports; the stores it takes down are private servers it starts itself.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in -h|--help) sed -n '2,18p' "$0"; exit 0 ;; esac
bash scripts/setup.sh
bash scripts/python-venv.sh --moto
bash scripts/kafka.sh
cargo build --release -p reconciler --bin reconciler -p faults --bin faults
exec timeout --signal=INT "${FAULTS_TIMEOUT:-3600}" "${CARGO_TARGET_DIR:-target}/release/faults" "$@"
