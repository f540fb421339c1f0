#!/usr/bin/env bash
# Starts a local Redis Cluster for tests and benchmarks: three masters on loopback
# (ports 7001-7003 by default, no replicas, nothing kept on disk), joined with
# `redis-cli --cluster create`. Idempotent: a cluster already answering `cluster_state:ok`
# is left alone; stopped nodes are started again and rejoin with their nodes.conf.
#
# Env: REDIS_CLUSTER_PORTS ("7001 7002 7003"), REDIS_CLUSTER_DIR
# (/tmp/reconciler-redis-cluster). Tests read the seed nodes from
# RECONCILER_TEST_REDIS_CLUSTER (default redis://127.0.0.1:7001,...:7002,...:7003).
set -euo pipefail

ports=(${REDIS_CLUSTER_PORTS:-7001 7002 7003})
dir="${REDIS_CLUSTER_DIR:-/tmp/reconciler-redis-cluster}"
mkdir -p "$dir"

exec 9>"$dir/start.lock"
flock 9

cluster_ok() { redis-cli -h 127.0.0.1 -p "${ports[0]}" cluster info 2>/dev/null | grep -q '^cluster_state:ok'; }

for p in "${ports[@]}"; do
  if ! redis-cli -h 127.0.0.1 -p "$p" ping >/dev/null 2>&1; then
    mkdir -p "$dir/$p"
    redis-server --port "$p" --bind 127.0.0.1 --daemonize yes --cluster-enabled yes \
      --cluster-config-file "$dir/$p/nodes.conf" --cluster-node-timeout 2000 \
      --save "" --appendonly no --dir "$dir/$p" --logfile "$dir/$p/redis.log" --pidfile "$dir/$p/redis.pid" 9>&-
  fi
done
for p in "${ports[@]}"; do
  for _ in $(seq 1 50); do redis-cli -h 127.0.0.1 -p "$p" ping >/dev/null 2>&1 && break; sleep 0.1; done
done

if ! cluster_ok; then
  known=$(redis-cli -h 127.0.0.1 -p "${ports[0]}" cluster nodes 2>/dev/null | wc -l)
  if [ "$known" -lt "${#ports[@]}" ]; then
    # A fresh set of nodes (or one that lost its config): make them one cluster.
    for p in "${ports[@]}"; do redis-cli -h 127.0.0.1 -p "$p" flushall >/dev/null; redis-cli -h 127.0.0.1 -p "$p" cluster reset hard >/dev/null; done
    addrs=(); for p in "${ports[@]}"; do addrs+=("127.0.0.1:$p"); done
    redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes >"$dir/create.log" 2>&1 \
      || { echo "redis-cluster.sh: cluster create failed, see $dir/create.log" >&2; cat "$dir/create.log" >&2; exit 1; }
  fi
  for _ in $(seq 1 100); do cluster_ok && break; sleep 0.2; done
fi
cluster_ok || { echo "redis-cluster.sh: cluster not ok on ports ${ports[*]}" >&2; exit 1; }
echo "redis-cluster.sh: cluster ok on 127.0.0.1 ports ${ports[*]}"
