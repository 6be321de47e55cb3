#!/usr/bin/env bash
# Restart test of the replicated formation (docs/replication.md): stops and starts the test
# profile's pg_auto_failover formation ROUNDS times in a row from its own data, with writes
# between. Every start must settle, with the primary it had before the stop, and every row
# written before must still be there. A start that began a failover (nodes stuck in
# stop_replication or demote_timeout) fails here.
#
# Needs the test stack (./dev stack up test); `./dev test` runs this for you after the cargo
# tests, which also use the formation.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROUNDS=${AGORA_RESTART_ROUNDS:-10}
DB_NAME=agora_restart_test

note() { printf 'replication restart: %s\n' "$*"; }
die() { printf 'replication restart: error: %s\n' "$*" >&2; exit 1; }
# shellcheck source=scripts/test-lib.sh
. "$ROOT/scripts/test-lib.sh"

PSQL="$(psql_bin)"
[[ -n ${AGORA_TEST_REPLICATED_URL:-} ]] || die "AGORA_TEST_REPLICATED_URL is not set (eval \"\$(./dev env test)\")"

# The primary's node name, from the monitor.
primary() {
  "$ROOT/dev" replication state test 2>/dev/null |
    awk -F'|' '$6 ~ /primary|single/ && $7 ~ /primary|single/ { gsub(/ /, "", $1); print $1 }'
}

sql() { # sql...
  "$PSQL" "$(primary_url)" -X -q -t -A -v ON_ERROR_STOP=1 "$@"
}

# The primary's own URL on our database. Not the multi-host URL: libpq tries its hosts in
# order, and a replica listed first that has not replayed CREATE DATABASE yet refuses the
# connection with a FATAL that ends the attempt.
primary_url() {
  local entry url
  IFS=, read -ra entries <<<"${AGORA_TEST_REPLICA_URLS:?}"
  for entry in "${entries[@]}"; do
    url=${entry#*=}
    if [[ $("$PSQL" "$url" -X -q -t -A -c "SELECT pg_is_in_recovery()" 2>/dev/null) == f ]]; then
      printf '%s/%s\n' "${url%/*}" "$DB_NAME"
      return 0
    fi
  done
  die "no node of the formation accepts writes"
}

fresh_database "$AGORA_TEST_REPLICATED_URL"
sql -c "CREATE TABLE written (round integer NOT NULL, n integer NOT NULL)"
expected=0
before="$(primary)"
[[ -n $before ]] || die "the formation has no primary to start with"
note "$ROUNDS stop/start rounds; primary $before"
for ((round = 1; round <= ROUNDS; round++)); do
  sql -c "INSERT INTO written SELECT $round, n FROM generate_series(1, 100) n"
  expected=$((expected + 100))
  started=$SECONDS
  "$ROOT/dev" replication down test >/dev/null
  "$ROOT/dev" replication up test >/dev/null || die "round $round: the formation did not start"
  after="$(primary)"
  [[ $after == "$before" ]] || die "round $round: the primary moved from $before to ${after:-nobody} across a restart"
  count="$(sql -c "SELECT count(*) FROM written")" || die "round $round: the primary refuses reads"
  [[ $count == "$expected" ]] || die "round $round: $count rows after the restart, $expected written"
  note "round $round: settled in $((SECONDS - started)) s, primary $after, $count rows"
done
note "$ROUNDS passed, 0 failed"
