# shellcheck shell=bash
# The replicated PostgreSQL topology (docs/replication.md) and ./dev replication, sourced by
# ./dev.
#
# A pg_auto_failover formation: a monitor (itself a PostgreSQL server) and three data nodes
# n1, n2, n3, each run by its keeper (`pg_autoctl run`), which starts, stops, promotes and
# rejoins its PostgreSQL as the monitor decides. The first node to join becomes the primary;
# the others stream from it through replication slots, and the primary waits for
# `ANY 1 (pgautofailover_standby_2, pgautofailover_standby_3)`: a committed write is on two
# servers. Connections from loopback are trusted (the servers listen on 127.0.0.1 only).
#
# Uses ./dev's helpers and profile variables: REPLICA_MONITOR_PORT, REPLICA_PORTS, STACK, LOGS.

REPLICA_NODES=(n1 n2 n3)

# Failover timing (docs/replication.md, "Failover time"). pg_auto_failover's defaults suit
# machines on a network (a primary is declared dead after 20 s and given 30 s to demote
# itself); on loopback much less is enough. The primary's keeper demotes itself after losing
# the monitor and its standbys for `network_partition_timeout` (1 s, plus its 1 s loop): at
# most 2 s. The monitor promotes only after declaring the primary dead (1.5 s without a report
# and a failed health check) and then waiting primary_demote_timeout (1 s) past the election
# of the most advanced standby: at least 2.5 s. An isolated primary has stepped down before
# another is promoted, so never two primaries; and with the synchronous quorum an isolated
# primary cannot acknowledge a write anyway.
REPLICA_MONITOR_SETTINGS=(
  "pgautofailover.health_check_period=500"
  "pgautofailover.health_check_timeout=1000"
  "pgautofailover.health_check_retry_delay=500"
  "pgautofailover.health_check_max_retries=1"
  "pgautofailover.node_considered_unhealthy_timeout=1500"
  "pgautofailover.primary_demote_timeout=1000"
)
REPLICA_NETWORK_PARTITION_TIMEOUT=1

# Where the formation lives: under the stack dir, or (as for the other servers) under
# /var/tmp when the `postgres` user cannot traverse it.
replication_locate() {
  if [[ -s $STACK/replicated.location ]]; then
    REPLICA_HOME="$(<"$STACK/replicated.location")"
    return 0
  fi
  if is_root && ! runuser -u postgres -- test -x "$STACK" 2>/dev/null; then
    local base
    base="/var/tmp/agora-$(printf '%s' "$STACK" | sha256sum | cut -c1-10)"
    mkdir_755 "$base" "$base/$PROFILE"
    REPLICA_HOME="$base/$PROFILE/replicated"
  else
    REPLICA_HOME="$STACK/replicated"
  fi
  printf '%s\n' "$REPLICA_HOME" >"$STACK/replicated.location"
}

# pg_autoctl keeps its configuration and state under XDG dirs: ours, not the user's.
autoctl() {
  run_pg env XDG_CONFIG_HOME="$REPLICA_HOME/config" XDG_DATA_HOME="$REPLICA_HOME/share" \
    XDG_RUNTIME_DIR="$REPLICA_HOME/run" pg_autoctl "$@"
}

replica_port() { # node
  local i
  for i in "${!REPLICA_NODES[@]}"; do
    [[ ${REPLICA_NODES[$i]} == "$1" ]] && { printf '%s\n' "${REPLICA_PORTS[$i]}"; return 0; }
  done
  die "no replica node '$1' (expected one of ${REPLICA_NODES[*]})"
}

replica_monitor_uri() {
  printf 'postgres://autoctl_node@127.0.0.1:%s/pg_auto_failover?sslmode=disable\n' "$REPLICA_MONITOR_PORT"
}

replica_psql() { # port database sql...
  local port=$1 db=$2
  shift 2
  psql -X -q -A -t -h 127.0.0.1 -p "$port" -U postgres -d "$db" -v ON_ERROR_STOP=1 "$@"
}

# The keeper runs in its own session: killing that session (`replication_kill`) is losing
# the machine, its PostgreSQL included.
replica_keeper_pidfile() { printf '%s/%s.keeper.pid\n' "$STACK" "$1"; }
replica_keeper_pid() { live_pid "$(replica_keeper_pidfile "$1")" runuser; }

replica_start_keeper() { # name pgdata create-args...
  local name=$1 pgdata=$2
  shift 2
  local log="$LOGS/replica-$name.log"
  if replica_keeper_pid "$name" >/dev/null; then return 0; fi
  # A killed node leaves pid files behind, and where nothing reaps orphans their processes
  # linger as zombies: pg_autoctl and PostgreSQL would take them for a running instance.
  rm -f "$REPLICA_HOME/run/pg_autoctl$pgdata/pg_autoctl.pid"
  local postmaster
  postmaster="$(head -n1 "$pgdata/postmaster.pid" 2>/dev/null || true)"
  if [[ $postmaster =~ ^[0-9]+$ ]] && ! pid_alive "$postmaster"; then rm -f "$pgdata/postmaster.pid"; fi
  if [[ -s $pgdata/PG_VERSION ]]; then
    # Settings may have changed since the node was made.
    if [[ $name != monitor ]]; then
      autoctl config set --pgdata "$pgdata" timeout.network_partition_timeout \
        "$REPLICA_NETWORK_PARTITION_TIMEOUT" >/dev/null
    fi
    spawn "$(replica_keeper_pidfile "$name")" "$log" runuser runuser -u postgres -- env \
      XDG_CONFIG_HOME="$REPLICA_HOME/config" XDG_DATA_HOME="$REPLICA_HOME/share" \
      XDG_RUNTIME_DIR="$REPLICA_HOME/run" pg_autoctl run --pgdata "$pgdata"
  else
    spawn "$(replica_keeper_pidfile "$name")" "$log" runuser runuser -u postgres -- env \
      XDG_CONFIG_HOME="$REPLICA_HOME/config" XDG_DATA_HOME="$REPLICA_HOME/share" \
      XDG_RUNTIME_DIR="$REPLICA_HOME/run" pg_autoctl "$@" --pgdata "$pgdata" \
      --pgctl "$PG_BIN/pg_ctl" --hostname 127.0.0.1 --auth trust --no-ssl --run
  fi
}

# "n1 primary primary\nn2 secondary secondary\n..." from the monitor: name, reported, assigned.
replication_states() {
  replica_psql "$REPLICA_MONITOR_PORT" pg_auto_failover -F ' ' \
    -c "SELECT nodename, reportedstate, goalstate FROM pgautofailover.node ORDER BY nodeid" 2>/dev/null
}

replica_settled() { # node: reported = assigned, and serving
  local name reported goal
  while read -r name reported goal; do
    # The first node is `single` until a second one joins.
    [[ $name == "$1" && $reported == "$goal" && $goal =~ ^(single|primary|secondary)$ ]] && return 0
  done < <(replication_states)
  return 1
}

# The monitor's database and extension exist. Quiet: a fresh monitor creates them a moment
# after it starts accepting connections, and the psql error meanwhile is expected.
replication_monitor_ready() {
  replica_psql "$REPLICA_MONITOR_PORT" pg_auto_failover -o /dev/null \
    -c "SELECT 1 FROM pgautofailover.formation" 2>/dev/null
}

# The node the monitor last assigned the primary's role, if any.
replication_last_primary() {
  local name
  name="$(replica_psql "$REPLICA_MONITOR_PORT" pg_auto_failover -c \
    "SELECT nodename FROM pgautofailover.node
     WHERE goalstate IN ('single', 'primary', 'wait_primary', 'join_primary', 'apply_settings')
     ORDER BY nodeid LIMIT 1" 2>/dev/null)" || return 1
  [[ -n $name ]] && printf '%s\n' "$name"
}

# The node is serving in the primary's role it was assigned, as this run of the monitor sees
# it: it reported in the last two seconds that its PostgreSQL runs, and the monitor's own
# health check, made since the monitor started, reached it.
replica_reporting() { # node
  [[ "$(replica_psql "$REPLICA_MONITOR_PORT" pg_auto_failover -c \
    "SELECT count(*) FROM pgautofailover.node
     WHERE nodename = '$1' AND reporttime > now() - interval '2 seconds'
       AND reportedpgisrunning AND health = 1
       AND healthchecktime > pg_postmaster_start_time()
       AND reportedstate = goalstate AND goalstate IN ('single', 'primary', 'wait_primary')" \
    2>/dev/null)" == 1 ]]
}

replication_settled() {
  local node
  for node in "${REPLICA_NODES[@]}"; do replica_settled "$node" || return 1; done
}

replication_primary_port() {
  local name reported goal
  while read -r name reported goal; do
    [[ $reported == "$goal" && $goal =~ ^(single|primary)$ ]] && { replica_port "$name"; return 0; }
  done < <(replication_states)
  return 1
}

# One attempt at the role and database on whichever node is the primary now (over TCP: the
# formation's servers trust loopback).
replication_bootstrap() {
  local port
  port="$(replication_primary_port)" || return 1
  pg_bootstrap_sql | psql -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 \
    -f - >/dev/null 2>&1
}

replication_up() {
  command -v pg_autoctl >/dev/null || die "pg_autoctl missing (package pg-auto-failover-cli)"
  replication_locate
  mkdir -p "$REPLICA_HOME"
  chmod 0700 "$REPLICA_HOME"
  mkdir -p "$REPLICA_HOME/run"
  if is_root; then chown -R postgres:postgres "$REPLICA_HOME"; fi
  local t0=$SECONDS
  replica_start_keeper monitor "$REPLICA_HOME/monitor" create monitor --pgport "$REPLICA_MONITOR_PORT"
  wait_until 60 "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$REPLICA_MONITOR_PORT" ||
    die "the pg_auto_failover monitor did not start (log: $LOGS/replica-monitor.log)"
  wait_until 30 replication_monitor_ready ||
    die "the monitor has no pgautofailover extension (log: $LOGS/replica-monitor.log)"
  local setting
  for setting in "${REPLICA_MONITOR_SETTINGS[@]}"; do
    replica_psql "$REPLICA_MONITOR_PORT" pg_auto_failover -c "ALTER SYSTEM SET ${setting%%=*} = '${setting#*=}'" >/dev/null
  done
  replica_psql "$REPLICA_MONITOR_PORT" pg_auto_failover -c "SELECT pg_reload_conf()" >/dev/null
  local node port first
  # A restart from old data. The monitor still holds the last run's node states, in which
  # every node's last report is old: as soon as any standby reports, the monitor takes the
  # primary for dead and starts a failover, which the restart then interrupts (nodes left in
  # stop_replication or demote_timeout). So the last primary starts alone, and the standbys
  # only once the monitor hears from it again: with no standby reporting there is no
  # failover candidate, and from then on the primary reports every second.
  if first="$(replication_last_primary)" && [[ -s $REPLICA_HOME/$first/PG_VERSION ]]; then
    replica_start_keeper "$first" "$REPLICA_HOME/$first"
    wait_until 60 replica_reporting "$first" ||
      die "the last primary $first did not report to the monitor (log: $LOGS/replica-$first.log)"
  fi
  for node in "${REPLICA_NODES[@]}"; do
    [[ -s $REPLICA_HOME/$node/PG_VERSION ]] && replica_start_keeper "$node" "$REPLICA_HOME/$node"
  done
  # New ones one at a time: the first becomes the primary, the next ones clone it.
  for node in "${REPLICA_NODES[@]}"; do
    [[ -s $REPLICA_HOME/$node/PG_VERSION ]] && continue
    port="$(replica_port "$node")"
    replica_start_keeper "$node" "$REPLICA_HOME/$node" create postgres --pgport "$port" \
      --name "$node" --monitor "$(replica_monitor_uri)"
    wait_until 120 replica_settled "$node" ||
      die "replica node $node did not settle (log: $LOGS/replica-$node.log)"
    autoctl config set --pgdata "$REPLICA_HOME/$node" timeout.network_partition_timeout \
      "$REPLICA_NETWORK_PARTITION_TIMEOUT" >/dev/null
  done
  wait_until 120 replication_settled ||
    die "the formation did not settle (logs: $LOGS/replica-*.log; ./dev replication state $PROFILE)"
  # The same role and database as on the other servers, created on the primary (and so on
  # every node). Restarted from its data, the formation can look settled from states left
  # by the last run while the primary still waits for a standby and refuses writes: retry.
  wait_until 60 replication_bootstrap ||
    die "could not create role/database agora on the formation's primary (logs: $LOGS/replica-*.log; ./dev replication state $PROFILE)"
  port="$(replication_primary_port)" || die "the formation has no primary"
  note "  replicated  pg_auto_failover monitor :$REPLICA_MONITOR_PORT, nodes ${REPLICA_NODES[*]} on :${REPLICA_PORTS[*]} (primary :$port) in $((SECONDS - t0))s"
}

replication_down() {
  [[ -s $STACK/replicated.location ]] || return 0
  replication_locate
  local node pid i primary="" order=()
  # Replicas first, then the primary, then the monitor: stopping the primary first would
  # have the monitor start a failover while the rest shuts down.
  if port_open "$REPLICA_MONITOR_PORT" && primary="$(replication_primary_port)"; then
    for node in "${REPLICA_NODES[@]}"; do
      [[ $(replica_port "$node") == "$primary" ]] || order+=("$node")
    done
    for node in "${REPLICA_NODES[@]}"; do
      [[ $(replica_port "$node") == "$primary" ]] && order+=("$node")
    done
  else
    order=("${REPLICA_NODES[@]}")
  fi
  for node in "${order[@]}" monitor; do
    pid="$(replica_keeper_pid "$node")" || { rm -f "$(replica_keeper_pidfile "$node")"; continue; }
    autoctl stop --pgdata "$REPLICA_HOME/$node" --fast >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 300; i++)); do
      pid_alive "$pid" || break
      sleep 0.1
    done
    if pid_alive "$pid"; then
      warn "replica $node did not stop in 30s, killing its session"
      pkill -KILL -s "$pid" 2>/dev/null || true
    fi
    rm -f "$(replica_keeper_pidfile "$node")"
    note "replica $node stopped"
  done
}

replication_running() {
  [[ -s $STACK/replicated.location ]] || return 1
  replication_locate
  replica_keeper_pid monitor >/dev/null
}

# Losing a machine: the keeper and its PostgreSQL die at once, nothing restarts them.
replication_kill() { # node
  replication_locate
  replica_port "$1" >/dev/null
  local pid postmaster
  pid="$(replica_keeper_pid "$1")" || die "replica $1 is not running"
  postmaster="$(head -n1 "$REPLICA_HOME/$1/postmaster.pid" 2>/dev/null || true)"
  pkill -KILL -s "$pid" 2>/dev/null || true
  if [[ $postmaster =~ ^[0-9]+$ ]]; then kill -KILL "$postmaster" 2>/dev/null || true; fi
  rm -f "$(replica_keeper_pidfile "$1")"
  note "replica $1 killed (keeper session $pid, postmaster ${postmaster:-none})"
}

# Starts a node's keeper again; a demoted primary rejoins as a standby by itself.
replication_start() { # node
  replication_locate
  replica_port "$1" >/dev/null
  replica_start_keeper "$1" "$REPLICA_HOME/$1"
  note "replica $1 started"
}

# Synchronous quorum (ANY 1 of the standbys) or asynchronous streaming, switched on the monitor
# with its own functions (pg_autoctl 2.0's `set formation` and `set node` misparse their
# arguments).
replication_mode() { # sync | async
  replication_locate
  local quorum=true count=1 node
  [[ $1 == async ]] && quorum=false count=0
  # number-sync-standbys must fit the number of quorum standbys at every step, and the monitor
  # takes one change at a time: each waits for the formation to settle.
  local steps=()
  [[ $1 == async ]] && steps+=("set_formation_number_sync_standbys('default', 0)")
  for node in "${REPLICA_NODES[@]}"; do
    steps+=("set_node_replication_quorum('default', '$node', $quorum)")
  done
  [[ $1 == sync ]] && steps+=("set_formation_number_sync_standbys('default', $count)")
  local step
  for step in "${steps[@]}"; do
    wait_until 30 replication_settled || warn "the formation did not settle"
    replica_psql "$REPLICA_MONITOR_PORT" pg_auto_failover -o /dev/null -c "SELECT pgautofailover.$step" ||
      die "the monitor refused $step"
  done
  wait_until 30 replication_sync_names_are "$1" ||
    warn "the primary's synchronous_standby_names did not change to $1 in 30s"
  local port
  port="$(replication_primary_port)" || die "the formation has no primary"
  note "replication $1: synchronous_standby_names = '$(replica_psql "$port" postgres -c 'SHOW synchronous_standby_names')'"
}

replication_sync_names_are() { # sync | async
  local port names
  replication_settled || return 1
  port="$(replication_primary_port)" || return 1
  names="$(replica_psql "$port" postgres -c 'SHOW synchronous_standby_names' 2>/dev/null)" || return 1
  if [[ $1 == sync ]]; then [[ $names == ANY* ]]; else [[ -z $names ]]; fi
}

replication_state() {
  replication_locate
  autoctl show state --pgdata "$REPLICA_HOME/monitor"
}

# The application's URLs: the primary wherever it is (libpq-style multi-host, the first
# host that accepts writes), and each node by name for the read pools.
replication_primary_url() { # database
  local hosts="" port
  for port in "${REPLICA_PORTS[@]}"; do hosts+="${hosts:+,}127.0.0.1:$port"; done
  printf 'postgres://agora:agora@%s/%s?target_session_attrs=read-write\n' "$hosts" "$1"
}

replication_node_urls() { # database
  local urls="" i
  for i in "${!REPLICA_NODES[@]}"; do
    urls+="${urls:+,}${REPLICA_NODES[$i]}=postgres://agora:agora@127.0.0.1:${REPLICA_PORTS[$i]}/$1"
  done
  printf '%s\n' "$urls"
}

# ./dev replication: start, stop, show, kill and restart nodes, switch the commit mode.
cmd_replication() { # sub [node] [profile]
  local sub=${1:-} node=""
  (($#)) && shift
  case $sub in kill | start) node=${1:-}; [[ -n $node ]] || usage; shift ;; esac
  (($# <= 1)) || usage
  load_profile "${1:-dev}"
  PG_BIN="$(pg_bindir)" || die "PostgreSQL is not installed"
  case $sub in
    up)
      # shellcheck disable=SC2034 # for ensure_packages
      WANT_REPLICATION=1
      mkdir_755 "$STACK_BASE" "$STACK"
      mkdir -p "$LOGS"
      ensure_packages
      with_lock
      replication_up
      ;;
    down) with_lock; replication_down ;;
    state) replication_state ;;
    kill) replication_kill "$node" ;;
    start) replication_start "$node" ;;
    sync | async) replication_mode "$sub" ;;
    *) usage ;;
  esac
}
