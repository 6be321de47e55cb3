# shellcheck shell=bash
# ./dev monitoring — Prometheus and its exporters for a stack profile (docs/monitoring.md).
#
# Sourced by ./dev: uses its utilities (note, die, spawn, stop_pid, live_pid, port_open,
# wait_until, ensure_packages, with_lock, pg_bindir) and the variables load_profile sets
# ($PROFILE, $STACK, $LOGS, $MAIN_PG_PORT, SHARD_PORTS, $REDIS_PORT, $EPMD_PORT). Like the
# stack, everything runs as our own processes on 127.0.0.1 with state under
# $STACK/monitoring; Debian's packaged services stay stopped.

# command:package pairs for ensure_packages.
MONITORING_TOOLS=(
  prometheus:prometheus promtool:prometheus
  prometheus-node-exporter:prometheus-node-exporter
  prometheus-process-exporter:prometheus-process-exporter
  prometheus-postgres-exporter:prometheus-postgres-exporter
  prometheus-redis-exporter:prometheus-redis-exporter
  curl:curl
)

# Ports, paths and intervals of the current profile. Ports lie above the ephemeral range, like
# the stack's: dev 61090-61099…, test 62090-62099….
monitoring_profile() {
  local base
  case $PROFILE in
    # dev runs deploy/monitoring/prometheus.yml as it is; test scrapes every second, so the
    # monitoring test needs only a few seconds of traffic.
    dev) base=61 MON_TIMEOUT="" MON_RETENTION=15d
      MON_INTERVAL="$(sed -n 's/^  scrape_interval: \([^ ]*\).*/\1/p' "$ROOT/deploy/monitoring/prometheus.yml")" ;;
    test) base=62 MON_INTERVAL=1s MON_TIMEOUT=1s MON_RETENTION=2h ;;
    *) die "unknown profile '$PROFILE'" ;;
  esac
  MON_PROM_PORT=${base}090 MON_NODE_PORT=${base}091 MON_PROCESS_PORT=${base}092
  MON_REDIS_PORT=${base}093 MON_PG_EXPORTER_PORT=${base}094
  MON_DIR="$STACK/monitoring"
  MON_RUN="$MON_DIR/run"
  MON_TARGETS="$MON_DIR/targets"
  MON_LOGS="$LOGS/monitoring"
  MON_URL="http://127.0.0.1:$MON_PROM_PORT"
  # Outbox backlog is measured per database, so the exporters of the main, shard and
  # formation servers connect to the database agora uses: `agora` in dev, the monitoring
  # test's in test.
  case $PROFILE in
    dev) MON_APP_DB=agora ;;
    test) MON_APP_DB=agora_monitoring ;;
  esac
  # The replicated formation (pg_auto_failover: a monitor and nodes n1..n3,
  # scripts/dev/replication.sh); its ports by the same convention should ./dev not define them.
  if declare -p REPLICA_PORTS >/dev/null 2>&1 && ((${#REPLICA_PORTS[@]})); then
    MON_REPLICA_PORTS=("${REPLICA_PORTS[@]}")
  else
    MON_REPLICA_PORTS=("${base}451" "${base}452" "${base}453")
  fi
  MON_REPLICA_MONITOR_PORT=${REPLICA_MONITOR_PORT:-${base}450}
}

# Every PostgreSQL server an exporter may watch, one per line:
#   name kind port exporter-port dsn
# Exporter ports follow the list's order whether or not a server runs, so each keeps its port.
monitoring_pg_servers() {
  local port=$MON_PG_EXPORTER_PORT i
  local app="agora:agora@127.0.0.1:%s/$MON_APP_DB?sslmode=disable"
  local monitor="postgres@127.0.0.1:%s/postgres?sslmode=disable"
  # shellcheck disable=SC2059 # the DSN templates are ours
  printf "main main %s %s postgresql://$app\n" "$MAIN_PG_PORT" "$((port++))" "$MAIN_PG_PORT"
  for i in "${!SHARD_PORTS[@]}"; do
    # shellcheck disable=SC2059
    printf "shard%s shard %s %s postgresql://$app\n" "$((i + 1))" "${SHARD_PORTS[$i]}" "$((port++))" "${SHARD_PORTS[$i]}"
  done
  # shellcheck disable=SC2059
  printf "monitor monitor %s %s postgresql://$monitor\n" "$MON_REPLICA_MONITOR_PORT" "$((port++))" "$MON_REPLICA_MONITOR_PORT"
  # The formation's nodes carry agora's database when it runs replicated (./dev up --replicated).
  for i in "${!MON_REPLICA_PORTS[@]}"; do
    # shellcheck disable=SC2059
    printf "n%s replicated %s %s postgresql://$app\n" "$((i + 1))" "${MON_REPLICA_PORTS[$i]}" "$((port++))" "${MON_REPLICA_PORTS[$i]}"
  done
}

# What a pid file under $MON_RUN holds, as /proc/<pid>/comm shows it (15 characters at most).
monitoring_comm() { # pid-file-name
  case $1 in
    prometheus.pid) printf 'prometheus\n' ;;
    node-exporter.pid) printf 'prometheus-node\n' ;;
    process-exporter.pid) printf 'prometheus-proc\n' ;;
    redis-exporter.pid) printf 'prometheus-redi\n' ;;
    postgres-exporter-*.pid) printf 'prometheus-post\n' ;;
    *) return 1 ;;
  esac
}

# Replaces a file with stdin only when the content differs (Prometheus re-reads target files
# on change, so a partial write must never be visible): status 0 when it changed.
monitoring_write() { # path
  local tmp
  tmp="$(mktemp "$1.XXXXXX")"
  cat >"$tmp"
  if [[ -f $1 ]] && cmp -s "$tmp" "$1"; then
    rm -f "$tmp"
    return 1
  fi
  chmod 0644 "$tmp"
  mv -f "$tmp" "$1"
}

monitoring_target_file() { # path host:port [label value]...
  local path=$1 target=$2 labels=""
  shift 2
  while (($# >= 2)); do
    labels+="${labels:+, }\"$1\": \"$2\""
    shift 2
  done
  printf '[{"targets": ["%s"], "labels": {%s}}]\n' "$target" "$labels" | monitoring_write "$path" || true
}

# Starts one daemon unless ours already runs; dies when its port belongs to someone else.
monitoring_spawn() { # label pid-name port cmd...
  local label=$1 pidname=$2 port=$3 comm pid how=running
  shift 3
  comm="$(monitoring_comm "$pidname")"
  if ! pid="$(live_pid "$MON_RUN/$pidname" "$comm")"; then
    port_open "$port" && die "port $port is taken by a process that is not our $label"
    spawn "$MON_RUN/$pidname" "$MON_LOGS/${pidname%.pid}.log" "$comm" "$@"
    wait_until 20 port_open "$port" || {
      log_tail "$MON_LOGS/${pidname%.pid}.log"
      die "$label did not listen on 127.0.0.1:$port (log: $MON_LOGS/${pidname%.pid}.log)"
    }
    pid="$(live_pid "$MON_RUN/$pidname" "$comm")" || die "$label exited (log: $MON_LOGS/${pidname%.pid}.log)"
    how=started
  fi
  printf '  %-25s %-8s pid %-7s http://127.0.0.1:%s/metrics\n' "$label" "$how" "$pid" "$port"
}

monitoring_stop_one() { # pid-name
  local name=${1%.pid} comm
  comm="$(monitoring_comm "$1")" || return 0
  stop_pid "$name" "$MON_RUN/$1" "$comm" 20
}

# One group per PostgreSQL server (the postmaster, found by its port; its children follow
# it), then the other parts of the stack. A process joins the first group it matches.
monitoring_process_config() {
  local name kind port rest
  printf '# generated by ./dev monitoring up (scripts/dev/monitoring.sh); edits are lost\n'
  printf 'process_names:\n'
  while read -r name kind port rest; do
    printf '  - name: postgres-%s\n    comm: [postgres]\n' "$name"
    printf "    cmdline: ['(?:-p\\\\s*|\\\\bport=)%s\\\\b']\n" "$port"
  done < <(monitoring_pg_servers)
  # pg_auto_failover's keeper supervises the cluster's servers.
  printf '  - name: pg_autoctl\n    comm: [pg_autoctl]\n'
  printf '  - name: agora\n    comm: [agora]\n'
  # Redis titles itself "redis-server <address>".
  printf "  - name: redis-server\n    comm: [redis-server]\n    cmdline: [':%s\\\\b']\n" "$REDIS_PORT"
  printf "  - name: rabbitmq\n    comm: [beam.smp]\n    cmdline: ['-epmd_port %s\\\\b']\n" "$EPMD_PORT"
  printf "  - name: prometheus\n    comm: [prometheus]\n    cmdline: ['--web.listen-address=127.0.0.1:%s\\\\b']\n" "$MON_PROM_PORT"
}

# The repo's prometheus.yml, with the test profile's intervals on the lines marked "profile".
monitoring_prometheus_config() {
  local src="$ROOT/deploy/monitoring/prometheus.yml"
  printf '# generated by ./dev monitoring up from deploy/monitoring/prometheus.yml; edits are lost\n'
  if [[ -z $MON_TIMEOUT ]]; then
    cat "$src"
    return 0
  fi
  sed -e "s/^\(  scrape_interval:\) [^ ]* # profile.*/\1 $MON_INTERVAL/" \
    -e "s/^\(  scrape_timeout:\) [^ ]* # profile.*/\1 $MON_TIMEOUT/" \
    -e "s/^\(  evaluation_interval:\) [^ ]* # profile.*/\1 $MON_INTERVAL/" "$src"
}

# The test profile's exporters watch the monitoring test's database; it must exist for them
# to connect (the test recreates it). On the formation it is created on the primary, which
# replicates it to the other nodes.
monitoring_app_db() {
  local name kind port rest psql hosts=""
  [[ $PROFILE == test ]] || return 0
  psql="$(pg_bindir)/psql"
  local urls=()
  while read -r name kind port rest; do
    port_open "$port" || continue
    case $kind in
      main | shard) urls+=("postgres://agora:agora@127.0.0.1:$port/postgres") ;;
      replicated) hosts+="${hosts:+,}127.0.0.1:$port" ;;
    esac
  done < <(monitoring_pg_servers)
  [[ -z $hosts ]] || urls+=("postgres://agora:agora@$hosts/postgres?target_session_attrs=read-write")
  local url
  for url in "${urls[@]}"; do
    "$psql" -X -q -v ON_ERROR_STOP=1 "$url" >/dev/null <<SQL || die "could not create database $MON_APP_DB via $url"
SELECT 'CREATE DATABASE $MON_APP_DB OWNER agora'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$MON_APP_DB') \gexec
SQL
  done
}

monitoring_up() {
  monitoring_profile
  mkdir -p "$LOGS"
  EXTRA_TOOLS+=("${MONITORING_TOOLS[@]}")
  ensure_packages
  with_lock
  mkdir -p "$MON_RUN" "$MON_TARGETS" "$MON_LOGS" "$MON_DIR/data"
  port_open "$MAIN_PG_PORT" ||
    warn "the $PROFILE stack is not running (./dev stack up $PROFILE): its exporters will report it down"
  monitoring_app_db
  note "$PROFILE monitoring ($MON_DIR):"

  monitoring_spawn node-exporter node-exporter.pid "$MON_NODE_PORT" \
    prometheus-node-exporter --web.listen-address="127.0.0.1:$MON_NODE_PORT" --no-collector.textfile \
    --no-collector.systemd

  # process-exporter reads its groups only at start: a changed config means a restart.
  if monitoring_process_config | monitoring_write "$MON_DIR/process-exporter.yml"; then
    monitoring_stop_one process-exporter.pid >/dev/null
  fi
  # Threads and smaps would multiply the cost of a scrape every second in the test profile.
  monitoring_spawn process-exporter process-exporter.pid "$MON_PROCESS_PORT" \
    prometheus-process-exporter -config.path "$MON_DIR/process-exporter.yml" \
    -web.listen-address "127.0.0.1:$MON_PROCESS_PORT" -threads=false -gather-smaps=false

  monitoring_spawn redis-exporter redis-exporter.pid "$MON_REDIS_PORT" \
    prometheus-redis-exporter -redis.addr "redis://127.0.0.1:$REDIS_PORT" \
    -web.listen-address "127.0.0.1:$MON_REDIS_PORT"

  # One exporter per PostgreSQL server, so each has its own pg_up. The formation's servers are
  # watched when it runs, a node that is down included (that is what PostgresDown is for):
  # `./dev monitoring up` again after starting the formation adds them.
  local name kind port exporter dsn formation=0
  while read -r name kind port exporter dsn; do
    if [[ $kind == replicated || $kind == monitor ]] && { port_open "$port" ||
      live_pid "$MON_RUN/postgres-exporter-$name.pid" prometheus-post >/dev/null; }; then
      formation=1
    fi
  done < <(monitoring_pg_servers)
  while read -r name kind port exporter dsn; do
    [[ $kind == replicated || $kind == monitor ]] && ((!formation)) && continue
    monitoring_spawn "postgres-exporter $name" "postgres-exporter-$name.pid" "$exporter" \
      env DATA_SOURCE_NAME="$dsn" prometheus-postgres-exporter \
      --web.listen-address="127.0.0.1:$exporter" \
      --extend.query-path="$ROOT/deploy/monitoring/postgres-exporter-queries.yml"
    monitoring_target_file "$MON_TARGETS/postgres-$name.json" "127.0.0.1:$exporter" server "$name" kind "$kind"
  done < <(monitoring_pg_servers)

  monitoring_target_file "$MON_TARGETS/node.json" "127.0.0.1:$MON_NODE_PORT"
  monitoring_target_file "$MON_TARGETS/process.json" "127.0.0.1:$MON_PROCESS_PORT"
  monitoring_target_file "$MON_TARGETS/redis.json" "127.0.0.1:$MON_REDIS_PORT"
  monitoring_target_file "$MON_TARGETS/prometheus.json" "127.0.0.1:$MON_PROM_PORT"
  if [[ $PROFILE == dev ]]; then
    # `./dev up`'s server; more processes: ./dev monitoring add-target NAME HOST:PORT.
    local ops=${AGORA_OPS_LISTEN:-127.0.0.1:9464}
    [[ $ops == api ]] && ops="$(agora_listen)"
    monitoring_add_agora_target serve "$ops"
    # ... and its feed worker's (./dev up sets AGORA_WORKER_OPS_LISTEN for it).
    monitoring_add_agora_target worker "${AGORA_WORKER_OPS_LISTEN:-127.0.0.1:9465}"
  fi

  cp "$ROOT/deploy/monitoring/alerts.yml" "$MON_DIR/alerts.yml.new"
  mv -f "$MON_DIR/alerts.yml.new" "$MON_DIR/alerts.yml"
  monitoring_prometheus_config >"$MON_DIR/prometheus.yml"
  grep -q "^  scrape_interval: $MON_INTERVAL\b" "$MON_DIR/prometheus.yml" ||
    die "no 'scrape_interval: $MON_INTERVAL' in $MON_DIR/prometheus.yml (the \"profile\" lines of deploy/monitoring/prometheus.yml changed?)"
  promtool check config "$MON_DIR/prometheus.yml" >"$MON_LOGS/promtool.log" 2>&1 || {
    log_tail "$MON_LOGS/promtool.log"
    die "promtool rejects $MON_DIR/prometheus.yml"
  }
  local pid
  if pid="$(live_pid "$MON_RUN/prometheus.pid" prometheus)"; then
    # Rules or intervals may have changed; targets are re-read on their own.
    curl -fsS -X POST "$MON_URL/-/reload" >/dev/null || die "Prometheus (pid $pid) refused to reload its config"
  fi
  monitoring_spawn prometheus prometheus.pid "$MON_PROM_PORT" \
    prometheus --config.file="$MON_DIR/prometheus.yml" --storage.tsdb.path="$MON_DIR/data" \
    --storage.tsdb.retention.time="$MON_RETENTION" --web.listen-address="127.0.0.1:$MON_PROM_PORT" \
    --web.enable-lifecycle
  wait_until 30 curl -fs -o /dev/null "$MON_URL/-/ready" ||
    die "Prometheus not ready at $MON_URL (log: $MON_LOGS/prometheus.log)"
  unlock
  # Debian's build ships the classic UI only, under /classic.
  note "Prometheus UI  $MON_URL/  (targets: $MON_URL/classic/targets, alerts: $MON_URL/classic/alerts; scrapes every $MON_INTERVAL)"
}

# Stops every monitoring process of the profile, Prometheus first. No lock: stack_down calls
# this while holding it.
monitoring_stop() {
  monitoring_profile
  [[ -d $MON_RUN ]] || return 0
  monitoring_stop_one prometheus.pid
  local f
  for f in "$MON_RUN"/*.pid; do
    [[ -e $f ]] && monitoring_stop_one "${f##*/}"
  done
  return 0
}

monitoring_down() {
  monitoring_profile
  [[ -d $MON_DIR ]] || return 0
  with_lock
  monitoring_stop
  unlock
}

# pid or nothing, for status lines.
monitoring_pid() { # pid-name
  live_pid "$MON_RUN/$1" "$(monitoring_comm "$1")" || true
}

monitoring_status_line() { # name pid-name port
  local pid
  pid="$(monitoring_pid "$2")"
  if [[ -n $pid ]]; then
    printf '  %-25s running  pid %-7s 127.0.0.1:%s\n' "$1" "$pid" "$3"
  else
    printf '  %-25s stopped\n' "$1"
  fi
}

# The lines `./dev status` shows (nothing when monitoring never ran for this profile).
monitoring_status_lines() {
  monitoring_profile
  [[ -d $MON_RUN ]] || return 0
  local name kind port exporter rest
  monitoring_status_line prometheus prometheus.pid "$MON_PROM_PORT"
  monitoring_status_line node-exporter node-exporter.pid "$MON_NODE_PORT"
  monitoring_status_line process-exporter process-exporter.pid "$MON_PROCESS_PORT"
  monitoring_status_line redis-exporter redis-exporter.pid "$MON_REDIS_PORT"
  while read -r name kind port exporter rest; do
    [[ -e $MON_RUN/postgres-exporter-$name.pid ]] || continue
    monitoring_status_line "postgres-exporter $name" "postgres-exporter-$name.pid" "$exporter"
  done < <(monitoring_pg_servers)
}

monitoring_status() {
  monitoring_profile
  note "$PROFILE monitoring ($MON_DIR):"
  [[ -d $MON_RUN ]] || { note "  not started (./dev monitoring up $PROFILE)"; return 0; }
  monitoring_status_lines
  [[ -n "$(monitoring_pid prometheus.pid)" ]] || return 0
  note "Prometheus UI  $MON_URL/  targets as it sees them:"
  python3 - "$MON_URL/api/v1/targets?state=active" <<'PY' || warn "could not read $MON_URL/api/v1/targets"
import json, sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=5) as response:
    targets = json.load(response)["data"]["activeTargets"]
if not targets:
    print("  none yet (Prometheus lists targets a few seconds after it starts)")
for t in sorted(targets, key=lambda t: (t["labels"]["job"], t["scrapeUrl"])):
    labels = t["labels"]
    name = labels.get("server") or labels.get("name") or ""
    line = f"  {t['health']:<7} {labels['job']:<10} {name:<8} {t['scrapeUrl']}  {t.get('lastError') or ''}"
    print(line.rstrip())
PY
}

# An agora process for Prometheus to scrape: NAME becomes its `name` label, HOST:PORT is its
# ops listener (AGORA_OPS_LISTEN). Picked up within seconds, no restart.
monitoring_add_agora_target() { # name host:port
  monitoring_profile
  [[ $1 =~ ^[A-Za-z0-9_.-]+$ ]] || die "target name '$1': letters, digits, '.', '_', '-' only"
  [[ $2 =~ ^[A-Za-z0-9.:_-]+:[0-9]+$ ]] || die "target address '$2': expected HOST:PORT"
  mkdir -p "$MON_TARGETS"
  monitoring_target_file "$MON_TARGETS/agora-$1.json" "$2" name "$1"
}

monitoring_remove_agora_target() { # name
  monitoring_profile
  [[ $1 =~ ^[A-Za-z0-9_.-]+$ ]] || die "target name '$1': letters, digits, '.', '_', '-' only"
  rm -f "$MON_TARGETS/agora-$1.json"
}

cmd_monitoring() {
  local sub=${1:-}
  (($#)) && shift
  case $sub in
    up | down | status)
      (($# <= 1)) || usage
      load_profile "${1:-dev}"
      "monitoring_$sub"
      ;;
    add-target)
      (($# == 2 || $# == 3)) || usage
      load_profile "${3:-dev}"
      monitoring_add_agora_target "$1" "$2"
      ;;
    remove-target)
      (($# == 1 || $# == 2)) || usage
      load_profile "${2:-dev}"
      monitoring_remove_agora_target "$1"
      ;;
    *) usage ;;
  esac
}
