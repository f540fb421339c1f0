#!/usr/bin/env bash
# Starts a local Kafka-compatible broker (Tansu) on loopback for tests and `serve`.
#
#   scripts/kafka.sh              memory:// storage (nothing survives a broker restart)
#   scripts/kafka.sh --postgres   storage in the local PostgreSQL (database `tansu`)
#
# Idempotent: installs Tansu with cargo when it is not on PATH (waiting for an install
# already under way instead of starting a second one), starts it only when nothing
# listens on the port yet, and waits until it answers.
#
# Known Tansu 0.6 limit (memory storage): a fetch from an offset inside a multi-record
# batch returns nothing, so a group restarting from a committed offset in the middle of a
# producer batch stalls. Tests that restart groups produce one record per batch
# (librdkafka producer setting batch.num.messages=1). Env: KAFKA_PORT (9092),
# KAFKA_LOG_DIR (/tmp/reconciler-kafka), TANSU_PG_URL.
set -euo pipefail

mode=memory
for arg in "$@"; do
  case "$arg" in
    --postgres) mode=postgres ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "kafka.sh: unknown argument $arg" >&2; exit 2 ;;
  esac
done

port="${KAFKA_PORT:-9092}"
log_dir="${KAFKA_LOG_DIR:-/tmp/reconciler-kafka}"
export PATH="$HOME/.cargo/bin:$PATH"
mkdir -p "$log_dir"

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

# One starter at a time: concurrent test binaries may all call this script.
exec 9>"$log_dir/start.lock"
flock 9

if listening; then
  echo "kafka.sh: broker already listening on 127.0.0.1:$port"
  exit 0
fi

if ! command -v tansu >/dev/null 2>&1; then
  if pgrep -f "cargo install tansu" >/dev/null 2>&1; then
    echo "kafka.sh: waiting for the tansu install already under way"
    for _ in $(seq 1 1800); do
      [ -x "$HOME/.cargo/bin/tansu" ] && break
      pgrep -f "cargo install tansu" >/dev/null 2>&1 || break
      sleep 1
    done
  fi
  if ! command -v tansu >/dev/null 2>&1; then
    echo "kafka.sh: installing tansu (about 10 minutes on 2 cores), log $log_dir/install.log"
    cargo install tansu --locked --features dynostore,postgres >"$log_dir/install.log" 2>&1
  fi
fi

if [ "$mode" = postgres ]; then
  pg_url="${TANSU_PG_URL:-postgres://postgres@127.0.0.1:5432/tansu?sslmode=disable}"
  if ! psql -h 127.0.0.1 -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='tansu'" | grep -q 1; then
    psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE tansu"
  fi
  # Tansu's crates ship only SQLite DDL; its PostgreSQL schema (etc/initdb.d in the Tansu
  # repository) must be loaded into the database once.
  if [ "$(psql -h 127.0.0.1 -U postgres -d tansu -tAc "SELECT to_regclass('public.cluster') IS NOT NULL")" != t ]; then
    echo "kafka.sh: database tansu has no Tansu schema; load Tansu's etc/initdb.d/*.sql into it first" >&2
    exit 1
  fi
  storage="$pg_url"
else
  storage="memory://tansu/"
fi

log="$log_dir/tansu-$port.log"
echo "kafka.sh: starting tansu ($storage) on 127.0.0.1:$port, log $log"
nohup setsid tansu broker \
  --listener-url "tcp://127.0.0.1:$port" \
  --advertised-listener-url "tcp://127.0.0.1:$port" \
  --storage-engine "$storage" >"$log" 2>&1 </dev/null 9>&- &
echo $! >"$log_dir/tansu-$port.pid"

for _ in $(seq 1 120); do
  if listening; then
    echo "kafka.sh: broker ready on 127.0.0.1:$port"
    exit 0
  fi
  if ! kill -0 "$(cat "$log_dir/tansu-$port.pid")" 2>/dev/null; then
    echo "kafka.sh: tansu exited, last lines of $log:" >&2
    tail -20 "$log" >&2
    exit 1
  fi
  sleep 0.5
done
echo "kafka.sh: broker did not answer on 127.0.0.1:$port within 60 s, see $log" >&2
exit 1
