# shellcheck shell=bash
# Helpers shared by the scripted tests (contract-test.sh, monitoring-test.sh), sourced after
# they define `die` and DB_NAME (the database each recreates on the test servers).

target_dir() {
  local t=${CARGO_TARGET_DIR:-$ROOT/target}
  [[ $t == /* ]] || t="$ROOT/$t" # cargo resolves it against its cwd, which is $ROOT
  printf '%s\n' "$t"
}

psql_bin() {
  if command -v psql >/dev/null; then command -v psql; return; fi
  local p
  p="$(printf '%s\n' /usr/lib/postgresql/*/bin/psql | sort -V | tail -n1)"
  [[ -x $p ]] || die "psql not found (./dev stack up test installs PostgreSQL)"
  printf '%s\n' "$p"
}

# Drops and creates $DB_NAME on the server of admin-url. FORCE: a previous run's server or an
# exporter may still be connected.
fresh_database() { # admin-url [owner]
  PGOPTIONS='-c client_min_messages=warning' "$(psql_bin)" "$1" -X -q -v ON_ERROR_STOP=1 \
    -c "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)" \
    -c "CREATE DATABASE $DB_NAME${2:+ OWNER $2}" >/dev/null ||
    die "could not recreate database $DB_NAME via $1 (is the test stack up? ./dev stack up test)"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Stops the server the script started (pid $SERVER_PID), if any: 10 s to drain, then KILL.
stop_server() {
  [[ -n ${SERVER_PID:-} ]] || return 0
  kill -TERM "$SERVER_PID" 2>/dev/null || true
  local i
  for ((i = 0; i < 100; i++)); do
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}
