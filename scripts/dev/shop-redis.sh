# shellcheck shell=bash
# The shop's Redis (docs/shop.md), sourced by scripts/dev/shop.sh: a primary and a replica,
# watched by three sentinels that fail over between them.

shop_redis_pid() { live_pid "$SHOP_DIR/redis$1.pid" redis-server; }
shop_sentinel_pid() { live_pid "$SHOP_DIR/sentinel$1.pid" redis-sentinel; }
shop_redis_ping() { [[ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" == PONG ]]; }

# Written once: Sentinel rewrites both its own files and the servers' (CONFIG REWRITE after a
# failover), so who is primary survives a restart.
shop_redis_conf() { # node
  local n=$1 dir="$SHOP_DIR/redis$1"
  mkdir -p "$dir"
  [[ -s $dir/redis.conf ]] && return 0
  {
    printf '# generated once by ./dev shop; Redis Sentinel rewrites it (CONFIG REWRITE)\n'
    printf 'bind 127.0.0.1\nport %s\nprotected-mode yes\n' "${SHOP_REDIS_PORTS[$((n - 1))]}"
    printf 'daemonize no\nsupervised no\nlogfile ""\ndir %s\n' "$dir"
    # The cart lives here: every write goes to the append-only file, flushed each second.
    printf 'appendonly yes\nappendfsync everysec\n'
    printf 'replica-read-only yes\nreplica-serve-stale-data yes\n'
    ((n == 1)) || printf 'replicaof 127.0.0.1 %s\n' "${SHOP_REDIS_PORTS[0]}"
  } >"$dir/redis.conf"
}

shop_sentinel_conf() { # node
  local n=$1 dir="$SHOP_DIR/sentinel$1"
  mkdir -p "$dir"
  [[ -s $dir/sentinel.conf ]] && return 0
  {
    printf '# generated once by ./dev shop; Sentinel rewrites it with what it learns\n'
    printf 'bind 127.0.0.1\nport %s\nprotected-mode no\n' "${SHOP_SENTINEL_PORTS[$((n - 1))]}"
    printf 'daemonize no\nlogfile ""\ndir %s\nsentinel resolve-hostnames no\n' "$dir"
    # Two of three sentinels must agree the primary is down; on loopback 2 s says enough.
    printf 'sentinel monitor %s 127.0.0.1 %s 2\n' "$SHOP_REDIS_MASTER" "${SHOP_REDIS_PORTS[0]}"
    printf 'sentinel down-after-milliseconds %s 2000\n' "$SHOP_REDIS_MASTER"
    printf 'sentinel failover-timeout %s 10000\n' "$SHOP_REDIS_MASTER"
    printf 'sentinel parallel-syncs %s 1\n' "$SHOP_REDIS_MASTER"
  } >"$dir/sentinel.conf"
}

shop_redis_start() { # node
  local n=$1 port pid how=running
  port=${SHOP_REDIS_PORTS[$((n - 1))]}
  if ! pid="$(shop_redis_pid "$n")"; then
    port_open "$port" && die "port $port is taken by a process that is not our shop Redis"
    shop_redis_conf "$n"
    # Only the sentinels' primary starts as a primary: another one (a former primary, whose
    # file says so) would take writes until the sentinels noticed (~10 s), and lose them then.
    local primary follow=()
    if primary="$(shop_redis_known_primary)" && [[ ${primary##*:} != "$port" ]]; then
      follow=(--replicaof "${primary%%:*}" "${primary##*:}")
    fi
    spawn "$SHOP_DIR/redis$n.pid" "$SHOP_LOGS/redis$n.log" redis-server redis-server \
      "$SHOP_DIR/redis$n/redis.conf" "${follow[@]}"
    how=started
  fi
  wait_until 30 shop_redis_ping "$port" || die "shop Redis $n not answering on 127.0.0.1:$port (log: $SHOP_LOGS/redis$n.log)"
  pid="$(shop_redis_pid "$n")" || die "shop Redis $n exited (log: $SHOP_LOGS/redis$n.log)"
  printf '  %-14s %-8s pid %-7s 127.0.0.1:%s  %s\n' "redis$n" "$how" "$pid" "$port" \
    "$(redis-cli -p "$port" role 2>/dev/null | head -n1)"
}

shop_sentinel_start() { # node
  local n=$1 port pid how=running
  port=${SHOP_SENTINEL_PORTS[$((n - 1))]}
  if ! pid="$(shop_sentinel_pid "$n")"; then
    port_open "$port" && die "port $port is taken by a process that is not our sentinel"
    shop_sentinel_conf "$n"
    spawn "$SHOP_DIR/sentinel$n.pid" "$SHOP_LOGS/sentinel$n.log" redis-sentinel \
      redis-sentinel "$SHOP_DIR/sentinel$n/sentinel.conf"
    how=started
  fi
  wait_until 30 shop_redis_ping "$port" || die "sentinel $n not answering on 127.0.0.1:$port (log: $SHOP_LOGS/sentinel$n.log)"
  pid="$(shop_sentinel_pid "$n")" || die "sentinel $n exited (log: $SHOP_LOGS/sentinel$n.log)"
  printf '  %-14s %-8s pid %-7s 127.0.0.1:%s\n' "sentinel$n" "$how" "$pid" "$port"
}

# The known primary first, so that the others can follow it at once.
shop_redis_up() {
  local primary first=1 n
  primary="$(shop_redis_known_primary)" && first="$(shop_redis_node_of "${primary##*:}")" || first=1
  shop_redis_start "$first"
  for n in "${SHOP_REDIS_NODES[@]}"; do
    [[ $n == "$first" ]] || shop_redis_start "$n"
  done
}

# host:port of the primary, as the first sentinel that answers sees it.
shop_redis_primary() {
  local port out
  for port in "${SHOP_SENTINEL_PORTS[@]}"; do
    out="$(redis-cli -p "$port" sentinel get-master-addr-by-name "$SHOP_REDIS_MASTER" 2>/dev/null)" || continue
    [[ -n $out ]] || continue
    printf '%s:%s\n' "$(sed -n 1p <<<"$out")" "$(sed -n 2p <<<"$out")"
    return 0
  done
  return 1
}

# The primary as the sentinels see it, or (none running) as they last wrote it down.
shop_redis_known_primary() {
  shop_redis_primary && return 0
  local n line host port
  for n in "${SHOP_SENTINEL_NODES[@]}"; do
    line="$(grep -m1 "^sentinel monitor $SHOP_REDIS_MASTER " "$SHOP_DIR/sentinel$n/sentinel.conf" 2>/dev/null)" || continue
    read -r _ _ _ host port _ <<<"$line"
    printf '%s:%s\n' "$host" "$port"
    return 0
  done
  return 1
}

shop_redis_node_of() { # port
  local n
  for n in "${SHOP_REDIS_NODES[@]}"; do
    [[ ${SHOP_REDIS_PORTS[$((n - 1))]} == "$1" ]] && { printf '%s\n' "$n"; return 0; }
  done
  return 1
}
