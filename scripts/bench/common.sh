# Shared by the study scripts (sourced, not run): messages, psql, and the million-user database
# agora_bench on the dev PostgreSQL, which every study measures against.
# Needs AGORA_BIN_DIR, AGORA_PG_BIN and AGORA_PG_PORT (set by ./dev bench).

BIN=${AGORA_BIN_DIR:?run through ./dev bench}
PSQL="$AGORA_PG_BIN/psql"
DB=agora_bench
ADMIN_URL="postgres://agora:agora@127.0.0.1:$AGORA_PG_PORT/postgres"
export AGORA_DATABASE_URL="postgres://agora:agora@127.0.0.1:$AGORA_PG_PORT/$DB"

note() { printf 'bench: %s\n' "$*"; }
die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }
sql() { PGPASSWORD=agora "$PSQL" -X -q -v ON_ERROR_STOP=1 -At "$AGORA_DATABASE_URL" "$@"; }

# Creates and migrates agora_bench, seeds a million users once; sets `users` to their count.
ensure_bench_data() {
  PGPASSWORD=agora "$PSQL" -X -q -At "$ADMIN_URL" -c "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1 ||
    PGPASSWORD=agora "$PSQL" -X -q "$ADMIN_URL" -c "CREATE DATABASE $DB" || die "could not create database $DB"
  "$BIN/agora" migrate >/dev/null
  users=$(sql -c "SELECT count(*) FROM users")
  if ((users == 0)); then
    note "seeding 1,000,000 users into $DB (once; about 20 s)"
    "$BIN/agora" seed users --users 1000000
    users=1000000
  elif ((users < 1000000)); then
    die "$DB has $users users, fewer than the studies' million; drop it (DROP DATABASE $DB) and rerun"
  fi
}
