#!/usr/bin/env bash
# Installs (if absent) and starts (if stopped) the servers the reconciler needs on this
# machine: MariaDB on 127.0.0.1:3306 (root, empty password) and Redis on 127.0.0.1:6379.
# Idempotent: a second run changes nothing.
set -euo pipefail

log() { echo "setup: $*" >&2; }

need_apt=()
command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || need_apt+=(mariadb-server mariadb-client)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

mysql_up() { mariadb -uroot -h127.0.0.1 -P3306 -e 'SELECT 1' >/dev/null 2>&1; }
if ! mysql_up; then
  log "starting mariadb"
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql >/dev/null 2>&1 || true
  for _ in $(seq 1 60); do mysql_up && break; sleep 1; done
  if ! mysql_up; then
    # A fresh install may let root in over the socket only: open TCP for root with an empty password.
    mariadb -uroot -e "ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD(''); FLUSH PRIVILEGES;" 2>/dev/null || true
  fi
  mysql_up || { log "mariadb does not answer on 127.0.0.1:3306"; exit 1; }
fi

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  log "starting redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/reconciler.log
  for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && break; sleep 0.5; done
  redis-cli -h 127.0.0.1 ping >/dev/null || { log "redis does not answer on 127.0.0.1:6379"; exit 1; }
fi
log "mariadb and redis are up"

# promtool (Debian's prometheus package) checks and unit-tests deploy/prometheus/ in the
# test suite. Only the tool is wanted: the package's server is kept from starting (it
# would take :9090, the HBase emulator's port).
if ! command -v promtool >/dev/null 2>&1; then
  log "installing prometheus (for promtool)"
  export DEBIAN_FRONTEND=noninteractive
  policy_added=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && policy_added=1
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  if [ "$policy_added" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
  command -v promtool >/dev/null 2>&1 || { log "promtool missing after installing prometheus"; exit 1; }
fi
