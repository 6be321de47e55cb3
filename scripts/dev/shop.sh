# shellcheck shell=bash
# ./dev shop — the shop's infrastructure for a stack profile (docs/shop.md), sourced by ./dev.
#
#   PostgreSQL shop-pg1, shop-pg2 ◀── pgpool1, pgpool2 (one watchdog cluster) ◀── shop app
#   Redis primary + replica, watched by three sentinels                        ◀── shop app
#   nginx1, nginx2, each round-robin over the shop app instances               ◀── clients
#
# Uses ./dev's helpers (note, die, spawn, stop_pid, live_pid, pid_alive, port_open, wait_until,
# run_pg, pg_locate, pg_choose_home, pg_init, ensure_packages, with_lock) and the variables
# load_profile sets ($PROFILE, $STACK, $LOGS). Like the stack, everything runs as our own
# processes on 127.0.0.1 with state under $STACK/shop; Debian's packaged services stay stopped.

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

# ------------------------------------------------------------ PostgreSQL backends --

# Makes backend N (1, 2) current for ./dev's pg_* helpers. Its log lives beside its data, in
# a directory `postgres` owns: pgpool's online recovery starts the server as `postgres`
# (pgpool_remote_start), and that start must be able to write the same log.
shop_pg_use() { # node
  # shellcheck disable=SC2034 # pg_locate (./dev) reads PG_NAME and PG_DIR
  PG_NAME=shop-pg$1 PG_DIR=shop-pg$1 PG_LABEL=shop-pg$1 PG_PORT=${SHOP_PG_PORTS[$(($1 - 1))]}
  pg_locate
  PG_LOG="$PG_HOME/postgres.log"
}

# The server's options, kept outside the data directory (a recovery replaces that) so that
# ./dev and pgpool_remote_start start it the same way. Durable: fsync and synchronous_commit on.
shop_pg_home() { # mode
  pg_choose_home
  mkdir -p "$PG_HOME"
  chmod 0700 "$PG_HOME"
  local opts="-c listen_addresses=127.0.0.1 -c port=$PG_PORT -c unix_socket_directories='$PG_HOME'"
  opts+=" -c max_connections=300 -c fsync=on -c synchronous_commit=on -c full_page_writes=on"
  # Snapshot isolation mode keeps the backends' snapshots in step only for REPEATABLE READ.
  [[ $1 == snapshot ]] && opts+=" -c 'default_transaction_isolation=repeatable read'"
  printf '%s\n' "$opts" >"$PG_HOME/pg_ctl.opts"
  touch "$PG_LOG"
  if is_root; then chown postgres:postgres "$PG_HOME" "$PG_HOME/pg_ctl.opts" "$PG_LOG"; fi
}

shop_pg_start() {
  pg_running && return 0
  port_open "$PG_PORT" && die "port $PG_PORT is taken by a process that is not our $PG_LABEL"
  # A killed server leaves its pid file; where nothing reaps orphans, the pid may still
  # belong to a zombie and PostgreSQL would refuse to start.
  local postmaster
  postmaster="$(head -n1 "$PG_DATA/postmaster.pid" 2>/dev/null || true)"
  if [[ $postmaster =~ ^[0-9]+$ ]] && ! pid_alive "$postmaster"; then rm -f "$PG_DATA/postmaster.pid"; fi
  run_pg "$PG_BIN/pg_ctl" start -D "$PG_DATA" -w -t 60 -s -o "$(<"$PG_HOME/pg_ctl.opts")" \
    -l "$PG_LOG" 9>&- || {
    log_tail "$PG_LOG"
    die "$PG_LABEL did not start (log: $PG_LOG)"
  }
}

shop_pg_stop() { # pg_ctl mode
  pg_running || return 0
  local pid
  pid="$(pg_pid)"
  run_pg "$PG_BIN/pg_ctl" stop -D "$PG_DATA" -m "${1:-fast}" -w -t 60 -s >/dev/null 2>&1 ||
    die "pg_ctl stop failed for $PG_LABEL (log: $PG_LOG)"
  note "$PG_LABEL stopped (pid $pid)"
}

shop_psql() { # port database sql... (over the socket: the local superuser, no password)
  local port=$1 db=$2
  shift 2
  run_pg psql -X -q -A -t -h "$PG_HOME" -p "$port" -U postgres -d "$db" -v ON_ERROR_STOP=1 "$@"
}

# Once, on the first backend of a new cluster; the second one is cloned from it. agora is a
# superuser like on the stack's other servers: pgpool's online recovery calls the
# pgpool_recovery functions (template1) as that user.
shop_pg_bootstrap() {
  shop_psql "$PG_PORT" postgres >/dev/null <<'SQL' || die "could not create role agora / database shop on $PG_LABEL"
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'agora') THEN
    CREATE ROLE agora LOGIN SUPERUSER CREATEDB PASSWORD 'agora';
  END IF;
END $$;
SELECT 'CREATE DATABASE shop OWNER agora' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'shop') \gexec
\c template1
CREATE EXTENSION IF NOT EXISTS pgpool_recovery;
SQL
}

# pgpool runs these from the main backend's data directory, as `postgres` (pgpool_recovery).
# They are rewritten into every backend at each start, and pg_basebackup copies them along.
shop_pg_scripts() { # mode
  local f
  cat >"$PG_DATA/shop_clone" <<EOF
#!/bin/sh
# Generated by ./dev shop (scripts/dev/shop.sh): pgpool-II's online recovery (docs/shop.md).
# \$1 = stage; then pgpool's arguments: main data dir, target host, target data dir, main port.
set -eu
stage=\$1 main_data=\$2 target_data=\$4 main_port=\$5
# Streaming: the copy is a standby and catches up by itself, so stage 1 may run while clients
# write. Native and snapshot: stage 2 runs once pgpool has sent every client away (on both
# pgpools, through the watchdog) and written nothing since its CHECKPOINT: a copy then is exact.
case \$stage:$1 in
  1st:streaming) standby=-R ;;
  2nd:streaming | 1st:*) exit 0 ;;
  *) standby= ;;
esac
# Only ever a data directory laid out by ./dev (options file beside it).
[ -f "\$(dirname "\$target_data")/pg_ctl.opts" ] && [ "\$(basename "\$target_data")" = data ] || exit 2
rm -rf "\$target_data"
# The main backend's socket lives beside its data directory.
exec "$PG_BIN/pg_basebackup" -h "\$(dirname "\$main_data")" -p "\$main_port" -U postgres \\
  -D "\$target_data" -X stream -c fast \$standby
EOF
  # shellcheck disable=SC2016 # for the generated script to expand
  printf '#!/bin/sh\nexec "$(dirname "$0")/shop_clone" 1st "$@"\n' >"$PG_DATA/recovery_1st_stage"
  # shellcheck disable=SC2016
  printf '#!/bin/sh\nexec "$(dirname "$0")/shop_clone" 2nd "$@"\n' >"$PG_DATA/recovery_2nd_stage"
  cat >"$PG_DATA/pgpool_remote_start" <<EOF
#!/bin/sh
# Generated by ./dev shop: starts a recovered backend (\$2 = its data dir) as ./dev does.
home=\$(dirname "\$2")
exec "$PG_BIN/pg_ctl" start -D "\$2" -w -t 60 -s -o "\$(cat "\$home/pg_ctl.opts")" -l "\$home/postgres.log"
EOF
  for f in shop_clone recovery_1st_stage recovery_2nd_stage pgpool_remote_start; do
    chmod 0700 "$PG_DATA/$f"
    if is_root; then chown postgres:postgres "$PG_DATA/$f"; fi
  done
}

# Backend N as pgpool sees it: up, down or unknown (no pgpool answers).
shop_node_state() { # node
  local i out
  for i in "${SHOP_PGPOOL_NODES[@]}"; do
    shop_pgpool_pid "$i" >/dev/null || continue
    out="$(pcp_node_info -h 127.0.0.1 -p "${SHOP_PCP_PORTS[$((i - 1))]}" -U agora -w -n "$(($1 - 1))" 2>/dev/null)" || continue
    # host port status(0 init, 1 up, 2 up and connected, 3 down) weight ...
    case $(awk '{print $3}' <<<"$out") in
      1 | 2) printf 'up\n' ;;
      *) printf 'down\n' ;;
    esac
    return 0
  done
  printf 'unknown\n'
}

shop_node_not_up() { [[ $(shop_node_state "$1") != up ]]; }

# pgpool's record of the backends (logdir/pgpool_status: one "up"/"down" line per node).
shop_status_down() { # node: recorded down by either pgpool
  local i line
  for i in "${SHOP_PGPOOL_NODES[@]}"; do
    line="$(sed -n "${1}p" "$SHOP_DIR/pgpool$i/pgpool_status" 2>/dev/null || true)"
    [[ $line == down ]] && return 0
  done
  return 1
}

shop_status_write() { # one word per backend: up|down
  local i
  for i in "${SHOP_PGPOOL_NODES[@]}"; do
    mkdir -p "$SHOP_DIR/pgpool$i"
    printf '%s\n' "$@" >"$SHOP_DIR/pgpool$i/pgpool_status"
  done
}

# The backend that holds the data: has a cluster, is no standby, and no pgpool recorded it down.
shop_pg_source() {
  local n
  for n in "${SHOP_PG_NODES[@]}"; do
    shop_pg_use "$n"
    [[ -s $PG_DATA/PG_VERSION && ! -e $PG_DATA/standby.signal ]] || continue
    shop_status_down "$n" && continue
    printf '%s\n' "$n"
    return 0
  done
  return 1
}

# Brings up the backends that hold current data; the others (new, stale, or of another mode)
# are left stopped and recorded down, for pgpool's online recovery to clone once pgpool runs.
shop_pg_up() { # mode
  local mode=$1 n source states=() fresh=""
  for n in "${SHOP_PG_NODES[@]}"; do
    shop_pg_use "$n"
    shop_pg_home "$mode"
  done
  if shop_pgpool_running; then
    # pgpool knows which backends are current: leave them be; those it holds down are
    # re-cloned by shop_pg_recover_down.
    for n in "${SHOP_PG_NODES[@]}"; do
      shop_pg_use "$n"
      if [[ $(shop_node_state "$n") != up ]] || ! pg_running; then continue; fi
      shop_pg_scripts "$mode"
      printf '  %-14s %-8s pid %-7s 127.0.0.1:%s  %s\n' "$PG_LABEL" running "$(pg_pid)" "$PG_PORT" "$PG_DATA"
    done
    return 0
  fi
  if ! source="$(shop_pg_source)"; then
    # A new cluster (or no backend that is certainly current: then the first one with data).
    source=1
    for n in "${SHOP_PG_NODES[@]}"; do
      shop_pg_use "$n"
      [[ -s $PG_DATA/PG_VERSION ]] && { source=$n; break; }
    done
    shop_pg_use "$source"
    rm -f "$PG_DATA/standby.signal"
    [[ -s $PG_DATA/PG_VERSION ]] || fresh=$source
    pg_init
  fi
  # A mode change makes every other backend a fresh copy of the source.
  local recorded
  recorded="$(shop_recorded_mode)"
  for n in "${SHOP_PG_NODES[@]}"; do
    shop_pg_use "$n"
    if [[ $n == "$source" ]]; then
      states+=(up)
    elif [[ -s $PG_DATA/PG_VERSION && $recorded == "$mode" ]] && ! shop_status_down "$n"; then
      states+=(up)
    else
      shop_pg_stop immediate
      states+=(down)
    fi
  done
  shop_status_write "${states[@]}"
  printf '%s\n' "$mode" >"$(shop_mode_file)"
  for n in "${SHOP_PG_NODES[@]}"; do
    [[ ${states[$((n - 1))]} == up ]] || continue
    shop_pg_use "$n"
    local how=running
    pg_running || { shop_pg_start; how=started; }
    wait_until 30 "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" ||
      die "$PG_LABEL not ready on 127.0.0.1:$PG_PORT (log: $PG_LOG)"
    [[ $n == "$fresh" ]] && shop_pg_bootstrap
    shop_pg_scripts "$mode"
    printf '  %-14s %-8s pid %-7s 127.0.0.1:%s  %s\n' "$PG_LABEL" "$how" "$(pg_pid)" "$PG_PORT" "$PG_DATA"
  done
}

# The backends recorded down get cloned from the main one by pgpool's online recovery.
shop_pg_recover_down() {
  local n
  for n in "${SHOP_PG_NODES[@]}"; do
    [[ $(shop_node_state "$n") == down ]] && shop_pg_recover "$n"
  done
  return 0
}

# pcp_recovery_node: stage 1, (native, snapshot: every client of both pgpools sent away) stage 2,
# pgpool_remote_start, attach. The target must be stopped first.
shop_pg_recover() { # node
  local n=$1 i pcp="" t0=$SECONDS
  for i in "${SHOP_PGPOOL_NODES[@]}"; do
    shop_pgpool_pid "$i" >/dev/null && { pcp=${SHOP_PCP_PORTS[$((i - 1))]}; break; }
  done
  [[ -n $pcp ]] || die "no pgpool runs: ./dev shop start pgpool1 (or up) first"
  shop_pg_use "$n"
  local other=$((3 - n))
  if [[ $(shop_node_state "$other") != up ]]; then
    # Nothing to clone from: start this backend as it is and attach it. Correct only if it
    # is the one that went down last (docs/shop.md).
    warn "shop-pg$other is down too: starting $PG_LABEL as it is and attaching it"
    shop_pg_start
    pcp_attach_node -h 127.0.0.1 -p "$pcp" -U agora -w -n "$((n - 1))" >/dev/null ||
      die "pcp_attach_node $((n - 1)) failed"
    note "$PG_LABEL attached"
    return 0
  fi
  local attempt marks
  for attempt in 1 2 3; do
    # A recovery the other pgpool does not hear of would let its clients write to one backend.
    wait_until 60 shop_watchdog_whole ||
      die "the pgpool watchdog is not whole (./dev shop status): recovering $PG_LABEL now would let one pgpool write past it"
    # Asked of another pgpool, the attach is the leader's to make, and the asking pgpool's
    # recovery never hears that it happened: it lets its clients back in on a 5 s timeout,
    # before it has learned of the attach.
    pcp=$(shop_watchdog_leader_pcp) || pcp=${pcp:-}
    wait_until 30 shop_pgpool_failover_settled ||
      warn "a pgpool is still busy with a failover; recovering $PG_LABEL anyway"
    shop_pg_stop immediate
    marks=$(shop_pgpool_log_marks)
    note "  $PG_LABEL: online recovery from shop-pg$other (pcp_recovery_node -n $((n - 1)))..."
    pcp_recovery_node -h 127.0.0.1 -p "$pcp" -U agora -w -n "$((n - 1))" >>"$SHOP_LOGS/recovery.log" 2>&1 || {
      log_tail "$SHOP_LOGS/recovery.log"
      log_tail "$PG_LOG"
      die "online recovery of $PG_LABEL failed (logs: $SHOP_LOGS/recovery.log, $SHOP_LOGS/pgpool*.log, $PG_LOG)"
    }
    # The watchdog tells the other pgpool; wait until both see it.
    wait_until 20 shop_node_up_everywhere "$n" || warn "not every pgpool reports $PG_LABEL up yet"
    # pgpool lets its clients back in 5 s after it asked for the attach even when the attach
    # has not happened yet (its main process was busy, say with a watchdog that had just
    # regained its peer): writes in between reach the survivor only, and the copy silently
    # misses them. It logs that wait running out; then the copy is made again.
    shop_pgpool_logs_since "$marks" | grep -q "waiting for wake up request is timeout" || break
    ((attempt < 3)) || die "pgpool released its clients before attaching $PG_LABEL three times: the backends may differ; ./dev shop down && ./dev shop up"
    warn "pgpool let clients write before it attached $PG_LABEL: it may have missed writes; detaching it and copying it again"
    pcp_detach_node -h 127.0.0.1 -p "$pcp" -U agora -w -n "$((n - 1))" >/dev/null 2>&1 || true
    wait_until 30 shop_node_not_up "$n" || die "pgpool still counts $PG_LABEL as up after detaching it"
  done
  note "  $PG_LABEL recovered and attached in $((SECONDS - t0))s (pid $(pg_pid))"
}

# Where each pgpool's log ends now, for shop_pgpool_logs_since.
shop_pgpool_log_marks() {
  local i
  for i in "${SHOP_PGPOOL_NODES[@]}"; do
    printf '%s ' "$(stat -c %s "$SHOP_LOGS/pgpool$i.log" 2>/dev/null || echo 0)"
  done
}

# What the pgpools logged after the marks.
shop_pgpool_logs_since() { # marks
  local i marks
  read -ra marks <<<"$1"
  for i in "${SHOP_PGPOOL_NODES[@]}"; do
    tail -c "+$((${marks[$((i - 1))]:-0} + 1))" "$SHOP_LOGS/pgpool$i.log" 2>/dev/null || true
  done
}

# The watchdog cluster is whole: every running pgpool sees every other running pgpool as a
# member, and all name the same leader. After a pgpool restarts the cluster takes a
# few seconds to agree (it may even split first): a failover or an online recovery decided
# before that is not seen by the other pgpool, which goes on writing to one backend only.
shop_watchdog_whole() {
  local i out leader="" running=0 members
  for i in "${SHOP_PGPOOL_NODES[@]}"; do
    shop_pgpool_pid "$i" >/dev/null && running=$((running + 1))
  done
  for i in "${SHOP_PGPOOL_NODES[@]}"; do
    shop_pgpool_pid "$i" >/dev/null || continue
    out="$(pcp_watchdog_info -h 127.0.0.1 -p "${SHOP_PCP_PORTS[$((i - 1))]}" -U agora -w 2>/dev/null)" || return 1
    members=$(awk 'NR > 2 && ($(NF - 2) == "LEADER" || $(NF - 2) == "STANDBY") && $NF == "MEMBER"' <<<"$out" | grep -c . || true)
    ((members >= running)) || return 1
    [[ $(awk 'NR > 2 && $(NF - 2) == "LEADER"' <<<"$out" | grep -c . || true) == 1 ]] || return 1
    local this
    this=$(awk 'NR > 2 && $(NF - 2) == "LEADER" {print $1}' <<<"$out")
    [[ -z $leader || $leader == "$this" ]] || return 1
    leader=$this
  done
}

# Every running pgpool has finished its last failover or attach. Its main process ends each by
# replacing its PCP process, which waits for a running pcp command: an online recovery asked
# before that waits on the main process, which waits on the recovery, until pgpool's 5 s
# timeout lets the clients in without the attach (shop_pg_recover).
shop_pgpool_failover_settled() {
  local i last
  for i in "${SHOP_PGPOOL_NODES[@]}"; do
    shop_pgpool_pid "$i" >/dev/null || continue
    last=$(tac "$SHOP_LOGS/pgpool$i.log" 2>/dev/null |
      grep -a -m1 -e "starting degeneration" -e "starting fail back" -e "fork a new PCP child" || true)
    [[ -z $last || $last == *"fork a new PCP child"* ]] || return 1
  done
}

# The pcp port of the pgpool that leads the watchdog cluster.
shop_watchdog_leader_pcp() {
  local i out leader
  for i in "${SHOP_PGPOOL_NODES[@]}"; do
    shop_pgpool_pid "$i" >/dev/null || continue
    out="$(pcp_watchdog_info -h 127.0.0.1 -p "${SHOP_PCP_PORTS[$((i - 1))]}" -U agora -w 2>/dev/null)" || continue
    # "127.0.0.1:62471 Linux vm 127.0.0.1 62471 62473 4 LEADER 0 MEMBER": its pgpool port.
    leader=$(awk 'NR > 2 && $(NF - 2) == "LEADER" {print $(NF - 5)}' <<<"$out")
    local j
    for j in "${SHOP_PGPOOL_NODES[@]}"; do
      if [[ ${SHOP_PGPOOL_PORTS[$((j - 1))]} == "$leader" ]]; then
        printf '%s\n' "${SHOP_PCP_PORTS[$((j - 1))]}"
        return 0
      fi
    done
  done
  return 1
}

shop_node_up_everywhere() { # node
  local i out
  for i in "${SHOP_PGPOOL_NODES[@]}"; do
    shop_pgpool_pid "$i" >/dev/null || continue
    out="$(pcp_node_info -h 127.0.0.1 -p "${SHOP_PCP_PORTS[$((i - 1))]}" -U agora -w -n "$(($1 - 1))" 2>/dev/null)" || return 1
    [[ $(awk '{print $3}' <<<"$out") =~ ^[12]$ ]] || return 1
  done
}

# Losing the machine: the postmaster and every backend process at once (pg_ctl started the
# postmaster in a session of its own).
shop_pg_kill() { # node
  shop_pg_use "$1"
  local pid
  pid="$(pg_pid 2>/dev/null)" || die "$PG_LABEL is not running"
  pid_alive "$pid" || die "$PG_LABEL is not running"
  shop_kill_session "$pid"
  kill -KILL "$pid" 2>/dev/null || true
  note "$PG_LABEL killed (postmaster $pid and its session)"
}

# ------------------------------------------------------------------------ pgpool-II --

shop_pgpool_dir() { printf '%s/pgpool%s\n' "$SHOP_DIR" "$1"; }
shop_pgpool_pid() { live_pid "$SHOP_DIR/pgpool$1.pid" pgpool; }

# Regenerated at every start; pgpool_status (its record of which backends are down) is kept.
shop_pgpool_conf() { # node mode
  local n=$1 mode=$2 i dir run
  dir="$(shop_pgpool_dir "$n")"
  run="$dir/run"
  mkdir -p "$dir" "$run" "$dir/oiddir"
  chmod 0700 "$dir"
  printf '%s\n' "$((n - 1))" >"$dir/pgpool_node_id"
  # Clients and pgpool itself (health checks, recovery) log in with scram as agora; pgpool
  # needs the clear password to answer the backends' scram challenge.
  printf 'agora:TEXTagora\n' >"$dir/pool_passwd"
  printf 'host all all 127.0.0.1/32 scram-sha-256\nlocal all all scram-sha-256\n' >"$dir/pool_hba.conf"
  printf 'agora:%s\n' "$(printf agora | md5sum | cut -d' ' -f1)" >"$dir/pcp.conf"
  chmod 0600 "$dir/pool_passwd" "$dir/pcp.conf"
  {
    printf "# generated by ./dev shop (scripts/dev/shop.sh) on every start; edits are lost\n"
    printf "backend_clustering_mode = '%s'\n" "$(shop_clustering_mode "$mode")"
    printf "listen_addresses = '127.0.0.1'\nport = %s\nsocket_dir = '%s'\n" "${SHOP_PGPOOL_PORTS[$((n - 1))]}" "$run"
    printf "pcp_listen_addresses = '127.0.0.1'\npcp_port = %s\npcp_socket_dir = '%s'\n" "${SHOP_PCP_PORTS[$((n - 1))]}" "$run"
    for i in "${SHOP_PG_NODES[@]}"; do
      shop_pg_use "$i"
      printf "backend_hostname%s = '127.0.0.1'\nbackend_port%s = %s\nbackend_weight%s = 1\n" $((i - 1)) $((i - 1)) "$PG_PORT" $((i - 1))
      printf "backend_data_directory%s = '%s'\nbackend_flag%s = 'ALLOW_TO_FAILOVER'\n" $((i - 1)) "$PG_DATA" $((i - 1))
      printf "backend_application_name%s = 'shop-pg%s'\n" $((i - 1)) "$i"
    done
    printf "enable_pool_hba = on\npool_passwd = 'pool_passwd'\nallow_clear_text_frontend_auth = off\n"
    # A client beyond num_init_children waits in the listen queue (not refused): the shop's
    # pools together must fit in one pgpool, for when the other is down. Each child keeps
    # max_pool backend connections per backend: 2 pgpools x 64 x 2 = 256 < max_connections 300.
    printf "num_init_children = 64\nmax_pool = 2\nchild_life_time = 300\nconnection_life_time = 0\nclient_idle_limit = 0\n"
    printf "connection_cache = on\nreset_query_list = 'ABORT; DISCARD ALL'\n"
    printf "log_destination = 'stderr'\nlog_line_prefix = '%%m: pgpool%s pid %%p: '\nlog_min_messages = log\n" "$n"
    printf "pid_file_name = '%s/pgpool.pid'\nlogdir = '%s'\nmemqcache_oiddir = '%s/oiddir'\n" "$dir" "$dir" "$dir"
    # Statement replication: no sequences in the shop's schema (ids come from the application),
    # so no insert_lock. With two backends a mismatch is a tie, which pgpool settles for the
    # lower node id: when that node dies in the middle of a statement, cutting off "the one that
    # differs" would detach the healthy one. So a mismatch only ends the client's session.
    printf "replicate_select = off\ninsert_lock = off\n"
    printf "replication_stop_on_mismatch = off\nfailover_if_affected_tuples_mismatch = off\n"
    printf "load_balance_mode = on\ndisable_load_balance_on_write = 'transaction'\nstatement_level_load_balance = off\n"
    if [[ $mode == streaming ]]; then
      printf "sr_check_period = 1\nsr_check_user = 'agora'\nsr_check_password = ''\nsr_check_database = 'postgres'\n"
      # A standby further behind than this gets no reads (like AGORA_REPLICA_MAX_LAG_BYTES).
      printf "delay_threshold = 8388608\n"
      # tokio-postgres' target_session_attrs=read-write asks SHOW transaction_read_only; load
      # balanced to the standby it says on and the connection is refused: ask the primary.
      printf "primary_routing_query_pattern_list = 'SHOW transaction_read_only\\;?'\n"
      printf "failover_command = '%s/failover.sh %%d %%P %%m %%R'\n" "$SHOP_DIR"
    else
      printf "sr_check_period = 0\nfailover_command = ''\n"
    fi
    printf "follow_primary_command = ''\nsearch_primary_node_timeout = 10\n"
    # A backend is declared dead after one failed check (each second) or one broken session.
    printf "health_check_period = 1\nhealth_check_timeout = 2\nhealth_check_user = 'agora'\n"
    printf "health_check_password = ''\nhealth_check_database = 'postgres'\nhealth_check_max_retries = 0\n"
    printf "connect_timeout = 2000\nfailover_on_backend_error = on\nfailover_on_backend_shutdown = on\n"
    printf "auto_failback = off\n"
    printf "recovery_user = 'agora'\nrecovery_password = ''\n"
    printf "recovery_1st_stage_command = 'recovery_1st_stage'\nrecovery_2nd_stage_command = 'recovery_2nd_stage'\n"
    # Stage 2 needs every client gone; pooled connections are never idle long, so they are
    # cut at once (the application reconnects once recovery ends). A pgpool child that died
    # abnormally (its backend killed under it) leaves pgpool's client counter above zero, and
    # stage 2 then waits the whole recovery_timeout before it resets the counter: clients wait
    # that long, so it is short (also the limit for the recovered server to start).
    printf "recovery_timeout = 15\nclient_idle_limit_in_recovery = -1\n"
    # The two pgpools form one watchdog cluster: a backend's failure, attach and recovery are
    # agreed on and seen by both (without it, online recovery could not hold off the other
    # pgpool's clients). No virtual IP: the application lists both pgpools itself. With two
    # members, one alone must still decide (half the votes is a quorum).
    printf "use_watchdog = on\ndelegate_ip = ''\ntrusted_servers = ''\nwd_ipc_socket_dir = '%s'\n" "$run"
    # pgpool 4.3's watchdog cannot bind one address: its TCP port and the heartbeat's UDP port
    # listen on every interface. The key (random, per stack) makes both ignore whoever does not
    # have it.
    printf "wd_authkey = '%s'\n" "$(shop_wd_authkey)"
    for i in "${SHOP_PGPOOL_NODES[@]}"; do
      printf "hostname%s = '127.0.0.1'\nwd_port%s = %s\npgpool_port%s = %s\n" $((i - 1)) $((i - 1)) \
        "${SHOP_WD_PORTS[$((i - 1))]}" $((i - 1)) "${SHOP_PGPOOL_PORTS[$((i - 1))]}"
      printf "heartbeat_hostname%s = '127.0.0.1'\nheartbeat_port%s = %s\nheartbeat_device%s = ''\n" $((i - 1)) $((i - 1)) \
        "${SHOP_HEARTBEAT_PORTS[$((i - 1))]}" $((i - 1))
    done
    printf "wd_priority = %s\nwd_lifecheck_method = 'heartbeat'\nwd_interval = 1\n" "$((3 - n))"
    printf "wd_heartbeat_keepalive = 1\nwd_heartbeat_deadtime = 5\n"
    printf "failover_when_quorum_exists = on\nfailover_require_consensus = on\nenable_consensus_with_half_votes = on\n"
    printf "allow_multiple_failover_requests_from_node = off\n"
  } >"$dir/pgpool.conf"
}

shop_wd_authkey() {
  local f="$SHOP_DIR/wd_authkey"
  if [[ ! -s $f ]]; then
    (umask 077 && head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$f")
  fi
  cat "$f"
}

# Streaming mode's failover_command (run by the watchdog leader's pgpool, as its user).
shop_failover_script() {
  local as_postgres=""
  is_root && as_postgres="runuser -u postgres --"
  cat >"$SHOP_DIR/failover.sh" <<EOF
#!/bin/sh
# Generated by ./dev shop: pgpool's failover_command in streaming mode.
# \$1 failed node, \$2 old primary node, \$3 new main node, \$4 its data directory.
[ "\$1" = "\$2" ] || exit 0 # a standby failed: nothing to promote
[ "\$3" -ge 0 ] || exit 1
cd /
exec $as_postgres "$PG_BIN/pg_ctl" promote -D "\$4" -w -t 60
EOF
  chmod 0755 "$SHOP_DIR/failover.sh"
}

shop_pgpool_start() { # node
  local n=$1 dir port pid how=running
  dir="$(shop_pgpool_dir "$n")"
  port=${SHOP_PGPOOL_PORTS[$((n - 1))]}
  if ! pid="$(shop_pgpool_pid "$n")"; then
    local p
    for p in "$port" "${SHOP_PCP_PORTS[$((n - 1))]}" "${SHOP_WD_PORTS[$((n - 1))]}"; do
      port_open "$p" && die "port $p is taken by a process that is not our pgpool$n"
    done
    # A killed pgpool leaves its pid file and sockets behind, and would refuse to start.
    rm -f "$dir/pgpool.pid" "$dir/run/".s.*
    shop_pgpool_conf "$n" "$(shop_recorded_mode)"
    spawn "$SHOP_DIR/pgpool$n.pid" "$SHOP_LOGS/pgpool$n.log" pgpool \
      pgpool -n -f "$dir/pgpool.conf" -F "$dir/pcp.conf" -a "$dir/pool_hba.conf"
    wait_until 30 port_open "$port" || {
      log_tail "$SHOP_LOGS/pgpool$n.log"
      die "pgpool$n did not listen on 127.0.0.1:$port (log: $SHOP_LOGS/pgpool$n.log)"
    }
    pid="$(shop_pgpool_pid "$n")" || die "pgpool$n exited (log: $SHOP_LOGS/pgpool$n.log)"
    how=started
    wait_until 60 shop_watchdog_whole ||
      warn "the pgpool watchdog has not agreed on a leader in 60 s (./dev shop status)"
  fi
  printf '  %-14s %-8s pid %-7s 127.0.0.1:%s  (pcp %s)\n' "pgpool$n" "$how" "$pid" "$port" "${SHOP_PCP_PORTS[$((n - 1))]}"
}

shop_pgpool_stop() { # node
  local pid
  pid="$(shop_pgpool_pid "$1")" || { rm -f "$SHOP_DIR/pgpool$1.pid"; return 0; }
  # SIGINT is pgpool's fast shutdown (SIGTERM would wait for every client to leave).
  kill -INT "$pid" 2>/dev/null || true
  wait_until 20 eval "! pid_alive $pid" || true
  shop_kill_session "$pid"
  rm -f "$SHOP_DIR/pgpool$1.pid"
  note "pgpool$1 stopped (pid $pid)"
}

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

shop_pgpool_kill() { # node
  local pid
  pid="$(shop_pgpool_pid "$1")" || die "pgpool$1 is not running"
  shop_kill_session "$pid"
  rm -f "$SHOP_DIR/pgpool$1.pid"
  note "pgpool$1 killed (session $pid)"
}

# ---------------------------------------------------------------------------- Redis --

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

# ---------------------------------------------------------------------------- nginx --

shop_nginx_pid() { live_pid "$SHOP_DIR/nginx$1.pid" nginx; }

# shellcheck disable=SC2016 # the $names are nginx's variables
shop_nginx_conf() { # node
  local n=$1 dir="$SHOP_DIR/nginx$1" p
  mkdir -p "$dir/tmp"
  {
    printf '# generated by ./dev shop (scripts/dev/shop.sh) on every start; edits are lost\n'
    printf 'daemon off;\nmaster_process on;\nworker_processes 1;\npid %s/nginx.pid;\n' "$dir"
    printf 'error_log %s/nginx%s.error.log warn;\n' "$SHOP_LOGS" "$n"
    printf 'events { worker_connections 4096; }\n'
    printf 'http {\n'
    printf '  log_format upstream '"'"'$remote_addr [$time_local] "$request" $status $body_bytes_sent upstream=$upstream_addr $upstream_status $request_time'"'"';\n'
    printf '  access_log %s/nginx%s.access.log upstream;\n' "$SHOP_LOGS" "$n"
    local t
    for t in client_body proxy fastcgi uwsgi scgi; do printf '  %s_temp_path %s/tmp/%s;\n' "$t" "$dir" "$t"; done
    # Round-robin; an instance that refuses or times out is skipped for fail_timeout, and the
    # request goes to the next one (a request already sent is not repeated unless idempotent).
    printf '  upstream shop {\n'
    for p in "${SHOP_APP_PORTS[@]}"; do
      printf '    server 127.0.0.1:%s max_fails=1 fail_timeout=5s;\n' "$p"
    done
    printf '    keepalive 32;\n  }\n'
    printf '  server {\n    listen 127.0.0.1:%s;\n' "${SHOP_NGINX_PORTS[$((n - 1))]}"
    printf '    location = /nginx-health { access_log off; return 200 "nginx%s\\n"; }\n' "$n"
    printf '    location / {\n'
    printf '      proxy_pass http://shop;\n      proxy_http_version 1.1;\n'
    printf '      proxy_set_header Connection "";\n      proxy_set_header Host $host;\n'
    printf '      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n'
    printf '      proxy_connect_timeout 1s;\n      proxy_read_timeout 30s;\n'
    printf '      proxy_next_upstream error timeout;\n      proxy_next_upstream_tries 2;\n'
    # One request id from the edge to the app's logs and error bodies.
    printf '      proxy_set_header X-Request-Id $request_id;\n'
    # No instance could answer (all down, or one died with the request in flight): the
    # platform's answer for a dependency that is away, 503 with Retry-After in the error
    # envelope, not nginx's HTML 502. The instances' own answers pass through untouched.
    printf '      error_page 502 504 = @unavailable;\n'
    printf '    }\n'
    printf '    location @unavailable {\n      default_type application/json;\n'
    printf '      add_header Retry-After 1 always;\n'
    printf '      return 503 '"'"'{"message":"the shop is unavailable; retry shortly","request_id":"$request_id","code":5001}'"'"';\n'
    printf '    }\n  }\n}\n'
  } >"$dir/nginx.conf"
}

shop_nginx_start() { # node
  local n=$1 port pid how=running dir="$SHOP_DIR/nginx$1"
  port=${SHOP_NGINX_PORTS[$((n - 1))]}
  if ! pid="$(shop_nginx_pid "$n")"; then
    port_open "$port" && die "port $port is taken by a process that is not our nginx$n"
    shop_nginx_conf "$n"
    rm -f "$dir/nginx.pid"
    # -e: the error log before the configuration is read, not the system-wide one.
    nginx -t -q -p "$dir" -c "$dir/nginx.conf" -e "$SHOP_LOGS/nginx$n.error.log" ||
      die "nginx$n: invalid configuration $dir/nginx.conf"
    spawn "$SHOP_DIR/nginx$n.pid" "$SHOP_LOGS/nginx$n.log" nginx \
      nginx -p "$dir" -c "$dir/nginx.conf" -e "$SHOP_LOGS/nginx$n.error.log"
    wait_until 20 port_open "$port" || die "nginx$n did not listen on 127.0.0.1:$port (log: $SHOP_LOGS/nginx$n.error.log)"
    how=started
  fi
  pid="$(shop_nginx_pid "$n")" || die "nginx$n exited (log: $SHOP_LOGS/nginx$n.error.log)"
  printf '  %-14s %-8s pid %-7s http://127.0.0.1:%s  -> 127.0.0.1:{%s}\n' "nginx$n" "$how" "$pid" "$port" \
    "$(IFS=,; printf '%s' "${SHOP_APP_PORTS[*]}")"
}

# ------------------------------------------------------------------------- commands --

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

shop_pgpool_running() {
  local n
  for n in "${SHOP_PGPOOL_NODES[@]}"; do shop_pgpool_pid "$n" >/dev/null && return 0; done
  return 1
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
