# shellcheck shell=bash
# The stack's PostgreSQL servers, sourced by ./dev: `main` (the platform's database) and the
# dialogs' shard servers. The shop (scripts/dev/shop-postgres.sh) and the replicated formation
# reuse the lower helpers (run_pg, pg_locate, pg_choose_home, pg_init, pg_running, pg_pid).

# initdb refuses to run as root, so as root the server runs as `postgres`.
run_pg() {
  if is_root; then
    (cd / && exec runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

# The stack runs several PostgreSQL servers: `main` (the platform's database) and
# `shard1`, `shard2`, … (the dialogs' shard servers). pg_use makes one of them current for
# the pg_* functions below.
pg_use() { # main | shardN
  PG_NAME=$1
  if [[ $PG_NAME == main ]]; then
    PG_PORT=$MAIN_PG_PORT PG_DIR=pg PG_LABEL=postgres
  else
    PG_PORT=${SHARD_PORTS[$((${PG_NAME#shard} - 1))]} PG_DIR=$PG_NAME PG_LABEL=$PG_NAME
  fi
  pg_locate
}

# PG_HOME holds the data dir and the unix socket. It normally lives in the
# stack dir; a location chosen earlier is recorded in $STACK/<dir>.location.
pg_locate() {
  if [[ -s $STACK/$PG_DIR.location ]]; then
    PG_HOME="$(<"$STACK/$PG_DIR.location")"
  else
    PG_HOME="$STACK/$PG_DIR"
  fi
  PG_DATA="$PG_HOME/data"
  if [[ $PG_NAME == main ]]; then PG_LOG="$LOGS/postgres.log"; else PG_LOG="$LOGS/$PG_NAME.log"; fi
}

# Every shard server's name.
shard_names() {
  local i
  for i in "${!SHARD_PORTS[@]}"; do printf 'shard%s\n' "$((i + 1))"; done
}

# As root, `postgres` must be able to reach the data dir; a clone under /root
# is not traversable, so fall back to /var/tmp (keyed by the stack dir).
pg_choose_home() {
  [[ -s $STACK/$PG_DIR.location ]] && return 0
  if is_root && ! runuser -u postgres -- test -x "$STACK" 2>/dev/null; then
    local base
    base="/var/tmp/agora-$(printf '%s' "$STACK" | sha256sum | cut -c1-10)"
    PG_HOME="$base/$PROFILE/$PG_DIR"
    note "postgres: user 'postgres' cannot traverse $STACK; data dir goes to $PG_HOME"
    mkdir_755 "$base" "$base/$PROFILE"
  else
    PG_HOME="$STACK/$PG_DIR"
  fi
  printf '%s\n' "$PG_HOME" >"$STACK/$PG_DIR.location"
  PG_DATA="$PG_HOME/data"
}

pg_running() { [[ -d $PG_DATA ]] && run_pg "$PG_BIN/pg_ctl" status -D "$PG_DATA" >/dev/null 2>&1; }
pg_pid() { [[ -r $PG_DATA/postmaster.pid ]] && head -n1 "$PG_DATA/postmaster.pid"; }

pg_init() {
  [[ -s $PG_DATA/PG_VERSION ]] && return 0
  mkdir -p "$PG_HOME"
  chmod 0700 "$PG_HOME"
  if is_root; then chown postgres:postgres "$PG_HOME"; fi
  # Local (socket) trust is safe: the socket dir is 0700 and owned by the
  # server user. TCP requires the scram password.
  run_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --encoding=UTF8 --locale=C.UTF-8 \
    --auth-local=trust --auth-host=scram-sha-256 >>"$LOGS/postgres-initdb.log" 2>&1 || {
    log_tail "$LOGS/postgres-initdb.log"
    die "initdb failed (log: $LOGS/postgres-initdb.log)"
  }
}

pg_start() {
  local opts="-c listen_addresses=127.0.0.1 -c port=$PG_PORT -c unix_socket_directories='$PG_HOME' -c max_connections=300"
  # Both profiles are durable (fsync, synchronous_commit and full_page_writes at their
  # defaults, on): tests that kill a process and count lost writes prove nothing otherwise.
  [[ $PROFILE == dev && $PG_NAME == main ]] && opts+=" -c shared_buffers=256MB"
  port_open "$PG_PORT" && die "port $PG_PORT is taken by a process that is not our PostgreSQL"
  # pg_ctl detaches the postmaster into its own session; its output is our log.
  run_pg "$PG_BIN/pg_ctl" start -D "$PG_DATA" -w -t 60 -s -o "$opts" >>"$PG_LOG" 2>&1 9>&- || {
    log_tail "$PG_LOG"
    die "PostgreSQL did not start (log: $PG_LOG)"
  }
}

pg_bootstrap() {
  pg_bootstrap_sql | run_pg "$PG_BIN/psql" -X -q -h "$PG_HOME" -p "$PG_PORT" -U postgres \
    -d postgres -v ON_ERROR_STOP=1 -f - >/dev/null || die "could not create role/database agora"
}


pg_bootstrap_sql() {
  cat <<'SQL'
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'agora') THEN
    CREATE ROLE agora LOGIN SUPERUSER CREATEDB PASSWORD 'agora';
  ELSE
    ALTER ROLE agora LOGIN SUPERUSER CREATEDB PASSWORD 'agora';
  END IF;
END $$;
SELECT 'CREATE DATABASE agora OWNER agora'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'agora') \gexec
SQL
}

pg_up() {
  pg_choose_home
  pg_init
  local how=running
  if ! pg_running; then
    pg_start
    how=started
  fi
  wait_until 30 "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" ||
    die "PostgreSQL not ready on 127.0.0.1:$PG_PORT (log: $PG_LOG)"
  pg_bootstrap
  printf '  %-9s %-8s pid %-7s %s\n' "$PG_LABEL" "$how" "$(pg_pid)" "postgres://agora:agora@127.0.0.1:$PG_PORT/agora"
}

pg_down() {
  pg_running || return 0
  local pid
  pid="$(pg_pid)"
  run_pg "$PG_BIN/pg_ctl" stop -D "$PG_DATA" -m fast -w -t 60 -s >>"$PG_LOG" 2>&1 ||
    die "pg_ctl stop failed (log: $PG_LOG)"
  note "$PG_LABEL stopped (pid $pid)"
}
