# shellcheck shell=bash
# ./dev shop — the shop's infrastructure for a stack profile (docs/shop.md), sourced by ./dev.
#
#   PostgreSQL shop-pg1, shop-pg2 ◀── pgpool1, pgpool2 (one watchdog cluster) ◀── shop app
#   Redis primary + replica, watched by three sentinels                        ◀── shop app
#   nginx1, nginx2, each round-robin over the shop app instances               ◀── clients
#
# This file holds the shop's ports and the ./dev shop commands; each part has a file of its
# own, sourced below: shop-postgres.sh (the backends and their online recovery),
# shop-pgpool.sh (pgpool-II and its watchdog), shop-redis.sh (Redis and Sentinel),
# shop-nginx.sh.
#
# Uses ./dev's helpers (note, die, spawn, stop_pid, live_pid, pid_alive, port_open, wait_until,
# run_pg, pg_locate, pg_choose_home, pg_init, ensure_packages, with_lock) and the variables
# load_profile sets ($PROFILE, $STACK, $LOGS). Like the stack, everything runs as our own
# processes on 127.0.0.1 with state under $STACK/shop; Debian's packaged services stay stopped.

# shellcheck source=scripts/dev/shop-postgres.sh
source "$ROOT/scripts/dev/shop-postgres.sh"
# shellcheck source=scripts/dev/shop-pgpool.sh
source "$ROOT/scripts/dev/shop-pgpool.sh"
# shellcheck source=scripts/dev/shop-redis.sh
source "$ROOT/scripts/dev/shop-redis.sh"
# shellcheck source=scripts/dev/shop-nginx.sh
source "$ROOT/scripts/dev/shop-nginx.sh"

SHOP_TOOLS=(pgpool:pgpool2 nginx:nginx redis-sentinel:redis-sentinel)
SHOP_REDIS_MASTER=agora-shop
SHOP_PG_NODES=(1 2)
SHOP_PGPOOL_NODES=(1 2)
SHOP_NGINX_NODES=(1 2)
SHOP_REDIS_NODES=(1 2)
SHOP_SENTINEL_NODES=(1 2 3)

# Ports lie above the ephemeral range like the stack's, and clear of every port ./dev and its
# scripts use (dev 614xx-615xx, test 624xx-625xx; Redis next to the stack's 63790/63800).
shop_profile() {
  local b
  case $PROFILE in
    dev) b=61 SHOP_REDIS_PORTS=(63794 63795) SHOP_SENTINEL_PORTS=(63894 63895 63896) ;;
    test) b=62 SHOP_REDIS_PORTS=(63804 63805) SHOP_SENTINEL_PORTS=(63904 63905 63906) ;;
    *) die "unknown profile '$PROFILE'" ;;
  esac
  SHOP_PG_PORTS=("${b}461" "${b}462")
  SHOP_PGPOOL_PORTS=("${b}471" "${b}472")
  SHOP_WD_PORTS=("${b}473" "${b}474")
  SHOP_HEARTBEAT_PORTS=("${b}475" "${b}476") # UDP
  SHOP_PCP_PORTS=("${b}481" "${b}482")
  SHOP_NGINX_PORTS=("${b}491" "${b}492")
  SHOP_APP_PORTS=("${b}501" "${b}502")
  SHOP_DIR="$STACK/shop"
  SHOP_LOGS="$LOGS/shop"
  # pcp_* read the password from this file (0600) instead of asking.
  export PCPPASSFILE="$SHOP_DIR/pcppass"
}

shop_mode_file() { printf '%s/pgpool.mode\n' "$SHOP_DIR"; }
shop_recorded_mode() { cat "$(shop_mode_file)" 2>/dev/null || true; }

# pgpool's name for a mode of ours.
shop_clustering_mode() {
  case $1 in
    snapshot) printf 'snapshot_isolation\n' ;;
    native) printf 'native_replication\n' ;;
    streaming) printf 'streaming_replication\n' ;;
    *) die "unknown pgpool mode '$1' (expected snapshot, native or streaming)" ;;
  esac
}

# ------------------------------------------------------------- shared by the parts --

# kill -9 every process of a session, again until none is left alive: a pgpool forking a child
# while it is killed leaves that child running, holding the ports.
shop_kill_session() { # sid
  local i
  for ((i = 0; i < 50; i++)); do
    pkill -KILL -s "$1" 2>/dev/null || true
    # Zombies stay where nothing reaps them; only live processes count. pgrep cannot tell.
    # shellcheck disable=SC2009
    [[ $(ps -o stat= -s "$1" 2>/dev/null | grep -cv '^Z' || true) == 0 ]] && return 0
    sleep 0.1
  done
  warn "processes of session $1 survived kill -9"
}

# ------------------------------------------------------------------------ commands --

shop_env_lines() {
  local hosts="" p sentinels="" nginx=""
  for p in "${SHOP_PGPOOL_PORTS[@]}"; do hosts+="${hosts:+,}127.0.0.1:$p"; done
  for p in "${SHOP_SENTINEL_PORTS[@]}"; do sentinels+="${sentinels:+,}127.0.0.1:$p"; done
  for p in "${SHOP_NGINX_PORTS[@]}"; do nginx+="${nginx:+,}http://127.0.0.1:$p"; done
  # Both pgpools, a random one first for each new connection, the other if it is down.
  printf "export AGORA_SHOP_DATABASE_URL='postgres://agora:agora@%s/shop?load_balance_hosts=random&target_session_attrs=read-write&connect_timeout=2'\n" "$hosts"
  printf 'export AGORA_SHOP_REDIS_SENTINELS=%s\n' "$sentinels"
  printf 'export AGORA_SHOP_REDIS_MASTER=%s\n' "$SHOP_REDIS_MASTER"
  printf 'export AGORA_SHOP_NGINX_URLS=%s\n' "$nginx"
  # Where nginx expects the instances: agora serve --services shop --listen <each>.
  printf 'export AGORA_SHOP_INSTANCE_ADDRS=%s\n' "$(IFS=,; printf '%s' "${SHOP_APP_PORTS[*]/#/127.0.0.1:}")"
}

shop_up() { # mode (empty: the recorded one, else native)
  local mode=${1:-} t0=$SECONDS recorded
  recorded="$(shop_recorded_mode)"
  mode=${mode:-${recorded:-native}}
  shop_clustering_mode "$mode" >/dev/null
  if [[ -n $recorded && $mode != "$recorded" ]] && shop_running; then
    die "the shop runs with --pgpool $recorded: ./dev shop down $PROFILE first"
  fi
  note "$PROFILE shop ($SHOP_DIR, pgpool mode $mode):"
  shop_pg_up "$mode"
  shop_failover_script
  local n
  for n in "${SHOP_PGPOOL_NODES[@]}"; do shop_pgpool_start "$n"; done
  # A backend comes up right after pgpool: let pgpool see it before judging it down.
  sleep 1
  shop_pg_recover_down
  shop_redis_up
  for n in "${SHOP_SENTINEL_NODES[@]}"; do shop_sentinel_start "$n"; done
  for n in "${SHOP_NGINX_NODES[@]}"; do shop_nginx_start "$n"; done
  note "$PROFILE shop ready in $((SECONDS - t0))s; its environment (./dev shop env $PROFILE):"
  shop_env_lines | sed 's/^/  /'
}

shop_running() {
  local n
  for n in "${SHOP_PGPOOL_NODES[@]}"; do shop_pgpool_pid "$n" >/dev/null && return 0; done
  for n in "${SHOP_PG_NODES[@]}"; do shop_pg_use "$n"; pg_running && return 0; done
  return 1
}

shop_down() {
  [[ -d $SHOP_DIR ]] || return 0
  local n
  for n in "${SHOP_NGINX_NODES[@]}"; do stop_pid "nginx$n" "$SHOP_DIR/nginx$n.pid" nginx 20; done
  for n in "${SHOP_SENTINEL_NODES[@]}"; do stop_pid "sentinel$n" "$SHOP_DIR/sentinel$n.pid" redis-sentinel 20; done
  for n in "${SHOP_REDIS_NODES[@]}"; do stop_pid "redis$n" "$SHOP_DIR/redis$n.pid" redis-server 20; done
  # pgpool before its backends: stopping a backend under a running pgpool would be a failure
  # it records (pgpool_status), and the next start would treat that backend as stale. A
  # pgpool's own file may lag what the watchdog agreed on, so both get the agreed state.
  local states=() state
  for n in "${SHOP_PG_NODES[@]}"; do
    state="$(shop_node_state "$n")"
    [[ $state == unknown ]] && { states=(); break; }
    states+=("$state")
  done
  for n in "${SHOP_PGPOOL_NODES[@]}"; do shop_pgpool_stop "$n"; done
  ((${#states[@]})) && shop_status_write "${states[@]}"
  for n in "${SHOP_PG_NODES[@]}"; do
    shop_pg_use "$n"
    shop_pg_stop fast
  done
}

shop_status() {
  note "$PROFILE shop ($SHOP_DIR, pgpool mode $(shop_recorded_mode)):"
  local n pid
  for n in "${SHOP_PG_NODES[@]}"; do
    shop_pg_use "$n"
    pid=""
    pg_running && pid="$(pg_pid)"
    status_line "$PG_LABEL" "$pid" "$PG_PORT"
  done
  for n in "${SHOP_PGPOOL_NODES[@]}"; do status_line "pgpool$n" "$(shop_pgpool_pid "$n" || true)" "${SHOP_PGPOOL_PORTS[$((n - 1))]}"; done
  for n in "${SHOP_REDIS_NODES[@]}"; do status_line "redis$n" "$(shop_redis_pid "$n" || true)" "${SHOP_REDIS_PORTS[$((n - 1))]}"; done
  for n in "${SHOP_SENTINEL_NODES[@]}"; do status_line "sentinel$n" "$(shop_sentinel_pid "$n" || true)" "${SHOP_SENTINEL_PORTS[$((n - 1))]}"; done
  for n in "${SHOP_NGINX_NODES[@]}"; do status_line "nginx$n" "$(shop_nginx_pid "$n" || true)" "${SHOP_NGINX_PORTS[$((n - 1))]}"; done
  for n in "${SHOP_PGPOOL_NODES[@]}"; do
    shop_pgpool_pid "$n" >/dev/null || continue
    note "  backends as pgpool$n sees them (SHOW pool_nodes):"
    PGPASSWORD=agora psql -X -h 127.0.0.1 -p "${SHOP_PGPOOL_PORTS[$((n - 1))]}" -U agora -d shop \
      -c 'SHOW pool_nodes' 2>&1 | sed 's/^/    /'
    note "  watchdog:"
    pcp_watchdog_info -h 127.0.0.1 -p "${SHOP_PCP_PORTS[$((n - 1))]}" -U agora -w 2>&1 | sed 's/^/    /'
    break
  done
  local primary
  primary="$(shop_redis_primary)" && note "  Redis primary (sentinels): $primary"
  return 0
}

shop_kill() { # target
  local n port
  case $1 in
    pg[12]) shop_pg_kill "${1#pg}" ;;
    pgpool[12]) shop_pgpool_kill "${1#pgpool}" ;;
    nginx[12])
      n=${1#nginx}
      port="$(shop_nginx_pid "$n")" || die "$1 is not running"
      shop_kill_session "$port"
      rm -f "$SHOP_DIR/nginx$n.pid"
      note "$1 killed (session $port)"
      ;;
    redis-primary | redis[12] | sentinel[123])
      local pidfile comm
      if [[ $1 == redis-primary ]]; then
        port="$(shop_redis_primary)" || die "no sentinel knows the primary"
        n="$(shop_redis_node_of "${port##*:}")" || die "the primary $port is not one of ours"
        pidfile="$SHOP_DIR/redis$n.pid" comm=redis-server
      elif [[ $1 == redis* ]]; then
        pidfile="$SHOP_DIR/$1.pid" comm=redis-server
      else
        pidfile="$SHOP_DIR/$1.pid" comm=redis-sentinel
      fi
      port="$(live_pid "$pidfile" "$comm")" || die "$1 is not running"
      kill -KILL "$port"
      rm -f "$pidfile"
      note "${pidfile##*/} killed: pid $port${n:+ (redis$n)}"
      ;;
    *) usage ;;
  esac
}

shop_start() { # target
  local n
  case $1 in
    pg[12])
      n=${1#pg}
      shop_pg_use "$n"
      # Where nothing reaps orphans, a killed postmaster stays a zombie that pg_ctl (and
      # PostgreSQL's own lock-file check) would take for a running server.
      local postmaster
      postmaster="$(head -n1 "$PG_DATA/postmaster.pid" 2>/dev/null || true)"
      if [[ $postmaster =~ ^[0-9]+$ ]] && ! pid_alive "$postmaster"; then
        rm -f "$PG_DATA/postmaster.pid"
      fi
      [[ $(shop_node_state "$n") == up ]] && pg_running && { note "$1 is up"; return 0; }
      # pgpool must have detached the dead backend (its next health check) before recovery.
      wait_until 30 shop_node_not_up "$n" || die "pgpool still counts $1 as up"
      shop_pg_recover "$n"
      ;;
    pgpool[12]) shop_pgpool_start "${1#pgpool}" ;;
    nginx[12]) shop_nginx_start "${1#nginx}" ;;
    # A former primary comes back as it was; the sentinels turn it into a replica of the new one.
    redis-primary | redis) shop_redis_up ;;
    redis[12]) shop_redis_start "${1#redis}" ;;
    sentinel[123]) shop_sentinel_start "${1#sentinel}" ;;
    *) usage ;;
  esac
}

cmd_shop() { # sub [target] [profile] [--pgpool mode]
  local sub=${1:-} target="" mode="" args=()
  (($#)) && shift
  while (($#)); do
    case $1 in
      --pgpool) mode=${2:-}; [[ -n $mode ]] || usage; shift 2 ;;
      --pgpool=*) mode=${1#--pgpool=}; shift ;;
      *) args+=("$1"); shift ;;
    esac
  done
  case $sub in kill | start) target=${args[0]:-}; [[ -n $target ]] || usage; args=("${args[@]:1}") ;; esac
  ((${#args[@]} <= 1)) || usage
  [[ -z $mode || $sub == up ]] || usage
  load_profile "${args[0]:-dev}"
  shop_profile
  case $sub in
    env) shop_env_lines; return 0 ;;
    up | down | status | kill | start) ;;
    *) usage ;;
  esac
  PG_BIN="$(pg_bindir)" || PG_BIN=""
  if [[ $sub == up ]]; then
    mkdir_755 "$STACK_BASE" "$STACK"
    mkdir -p "$LOGS"
    EXTRA_TOOLS+=("${SHOP_TOOLS[@]}")
    local major
    major="$(basename "$(dirname "$(pg_bindir || echo /15/bin)")")"
    EXTRA_FILES+=("/usr/share/postgresql/$major/extension/pgpool_recovery.control:postgresql-$major-pgpool2")
    ensure_packages
    PG_BIN="$(pg_bindir)"
  fi
  if [[ $sub != up && ! -d $SHOP_DIR ]]; then
    note "no shop in the $PROFILE stack ($SHOP_DIR): ./dev shop up $PROFILE"
    [[ $sub == status || $sub == down ]] && return 0
    exit 1
  fi
  [[ -n $PG_BIN ]] || die "PostgreSQL is not installed (./dev shop up installs it)"
  mkdir -p "$SHOP_DIR" "$SHOP_LOGS"
  chmod 0755 "$SHOP_DIR"
  (umask 077 && printf '*:*:agora:agora\n' >"$PCPPASSFILE")
  [[ $sub == status ]] && { shop_status; return 0; }
  with_lock
  case $sub in
    up) shop_up "$mode" ;;
    down) shop_down ;;
    kill) shop_kill "$target" ;;
    start) shop_start "$target" ;;
  esac
  unlock
}
