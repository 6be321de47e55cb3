#!/usr/bin/env bash
# The user-search study (docs/benchmarks/user-search.md), reproduced with one command:
# `./dev bench search`, which starts the dev stack and then runs this script.
#
# In its own database (agora_bench) on the dev PostgreSQL it seeds a million users if they are
# not there yet, serves them on 127.0.0.1:8090 and measures, in one run:
#   1. the load tool's ceiling: GET /health;
#   2. search with the name-prefix indexes dropped;
#   3. search with the indexes rebuilt, results ordered by id (the order before the hardening
#      issue: every match is read and sorted; AGORA_SEARCH_ORDER=id);
#   4. the same in name order, the index's own (the default), which stops at the 100th row.
# Each with EXPLAIN (ANALYZE, BUFFERS) of the same query, and the CPU seconds the server,
# PostgreSQL and the load tool used, so the report can say where the time went.
#
# Env: AGORA_BIN_DIR (release binaries), AGORA_PG_BIN, AGORA_PG_PORT, AGORA_PG_PID (postmaster),
#      set by ./dev; BENCH_LEVELS (1,10,100,1000), BENCH_WARMUP (2), BENCH_DURATION (10),
#      BENCH_POOL (32), BENCH_PATHS (1000), BENCH_MIX (2=30,3=40,4=30), BENCH_OUT
#      (docs/benchmarks).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=common.sh
. "$ROOT/scripts/bench/common.sh"
LEVELS=${BENCH_LEVELS:-1,10,100,1000}
WARMUP=${BENCH_WARMUP:-2}
DURATION=${BENCH_DURATION:-10}
POOL=${BENCH_POOL:-32}
PATH_COUNT=${BENCH_PATHS:-1000}
MIX=${BENCH_MIX:-2=30,3=40,4=30}
OUT=${BENCH_OUT:-$ROOT/docs/benchmarks}
STEM=user-search
LISTEN=127.0.0.1:8090
WORK="$(mktemp -d)"
SERVER_PID=""

INDEX_DDL=""
FIRST_NAME_INDEX_DDL=""
cleanup() {
  if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  # An interrupted run must not leave the database without its index.
  local ddl
  for ddl in "$INDEX_DDL" "$FIRST_NAME_INDEX_DDL"; do
    [[ -z $ddl ]] || sql -c "${ddl/CREATE INDEX/CREATE INDEX IF NOT EXISTS}" >/dev/null 2>&1 || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM


# --- data ---------------------------------------------------------------------------------
ensure_bench_data

INDEX_DDL=$(sql -c "SELECT pg_get_indexdef('users_name_prefix_idx'::regclass)" 2>/dev/null || true)
if [[ -z $INDEX_DDL ]]; then
  # A previous run was interrupted between drop and rebuild: the migration's definition.
  INDEX_DDL="CREATE INDEX users_name_prefix_idx ON public.users USING btree (lower(second_name) text_pattern_ops, lower(first_name) text_pattern_ops)"
  sql -c "$INDEX_DDL"
fi
FIRST_NAME_INDEX_DDL=$(sql -c "SELECT pg_get_indexdef('users_first_name_prefix_idx'::regclass)" 2>/dev/null || true)
if [[ -z $FIRST_NAME_INDEX_DDL ]]; then
  FIRST_NAME_INDEX_DDL="CREATE INDEX users_first_name_prefix_idx ON public.users USING btree (lower(first_name) text_pattern_ops, lower(second_name) text_pattern_ops)"
  sql -c "$FIRST_NAME_INDEX_DDL"
fi

# --- server -------------------------------------------------------------------------------
ready() { python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "http://$LISTEN/ready" 2>/dev/null; }
# start_server [ENV=VALUE...]: one `agora serve` with the study's settings.
start_server() {
  env AGORA_LISTEN=$LISTEN AGORA_OPS_LISTEN=api AGORA_DB_POOL_SIZE="$POOL" AGORA_LOG=warn "$@" \
    "$BIN/agora" serve >>"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 100); do
    ready && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; die "server exited"; }
    sleep 0.1
  done
  ready || die "server did not become ready on $LISTEN"
}
start_server

"$BIN/agora" scenario search --count "$PATH_COUNT" --mix "$MIX" --seed 1 --out "$WORK/paths.txt"

# The statement the server prepares (crates/social/src/store.rs, search_users), explained with
# the first sampled prefixes. A prepared statement runs custom plans (planned for the values)
# for its first five executions, then usually settles on its generic plan; both are shown.
read -r FIRST LAST < <(python3 - "$WORK/paths.txt" <<'PY'
import sys, urllib.parse
line = open(sys.argv[1]).readline().strip()
q = urllib.parse.parse_qs(urllib.parse.urlsplit(line).query)
print(q["first_name"][0], q["last_name"][0])
PY
)
RANGES='SELECT id, first_name, second_name, birthdate, biography, city FROM users
 WHERE lower(second_name) ~>=~ lower($1) AND lower(second_name) ~<~ (lower($1) || chr(1114111))
   AND lower(first_name) ~>=~ lower($2) AND lower(first_name) ~<~ (lower($2) || chr(1114111))'
STATEMENT="$RANGES
 ORDER BY lower(second_name) USING ~<~, lower(first_name) USING ~<~ LIMIT 100"
STATEMENT_BY_ID="$RANGES
   AND lower(second_name) LIKE lower(\$3) AND lower(first_name) LIKE lower(\$4)
 ORDER BY id LIMIT 100"
explain() { # custom|generic [statement]
  sql -c "SET plan_cache_mode = force_$1_plan" \
    -c "PREPARE search(text, text, text, text) AS ${2:-$STATEMENT}" \
    -c "EXPLAIN (ANALYZE, BUFFERS) EXECUTE search('$LAST', '$FIRST', '$LAST%', '$FIRST%')"
}

note "dropping the indexes"
sql -c "DROP INDEX users_name_prefix_idx" -c "DROP INDEX users_first_name_prefix_idx"
sql -c "ANALYZE users"
note "EXPLAIN without the index"
explain custom >"$WORK/plan-without.txt"

note "1/4 the load tool's ceiling: GET /health"
measure ceiling --series "ceiling: GET /health=/health"
note "2/4 search without the indexes"
measure without --series "search, no index=@$WORK/paths.txt"
note "rebuilding the indexes"
t0=$(now)
sql -c "$INDEX_DDL"
INDEX_BUILD_SECS=$(awk -v a="$t0" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}')
sql -c "$FIRST_NAME_INDEX_DDL"
sql -c "ANALYZE users"
stop_server
start_server AGORA_SEARCH_ORDER=id
note "3/4 search with the index, results by id (before)"
measure by-id --series "search, with index, by id (before)=@$WORK/paths.txt"
stop_server
start_server
note "4/4 search with the index, in index order (after)"
measure with --series "search, with index, in index order=@$WORK/paths.txt"
explain custom >"$WORK/plan-custom.txt"
explain generic >"$WORK/plan-generic.txt"
explain custom "$STATEMENT_BY_ID" >"$WORK/plan-by-id.txt"

# --- report -------------------------------------------------------------------------------
setting() { sql -c "SHOW $1"; }
cpu_table ceiling without by-id with >"$WORK/cpu.md"
{
  printf 'The statement the server prepares, with the prefixes `%s` and `%s` (the first of the\n' "$LAST" "$FIRST"
  printf 'sampled searches), explained by `psql` right after each measurement.\n\n'
  printf '```sql\n%s\n```\n\n' "$STATEMENT"
  printf '### Without the index\n\n```\n%s\n```\n\n' "$(cat "$WORK/plan-without.txt")"
  printf '### With the index: a custom plan\n\n'
  printf 'Planned for these values, as in the first five executions on each connection.\n\n'
  printf '```\n%s\n```\n\n' "$(cat "$WORK/plan-custom.txt")"
  printf '### With the index: the generic plan\n\n'
  printf 'Planned once for any values; what the prepared statement settles on after that.\n\n'
  printf '```\n%s\n```\n\n' "$(cat "$WORK/plan-generic.txt")"
  printf '### Before: the same search ordered by id\n\n'
  printf 'What `AGORA_SEARCH_ORDER=id` runs: every match of the prefixes is read and sorted.\n\n'
  printf '```sql\n%s\n```\n\n```\n%s\n```\n' "$STATEMENT_BY_ID" "$(cat "$WORK/plan-by-id.txt")"
} >"$WORK/plans.md"
{
  printf '```sql\n%s;\n```\n\n' "$INDEX_DDL"
  printf 'Rebuilt in %s s on 1M rows during this run.\n\n' "$INDEX_BUILD_SECS"
  cat "$ROOT/scripts/bench/user-search-index.md"
} >"$WORK/index.md"

server_version=$(setting server_version)
"$BIN/agora-bench" render --title "User search: a million users, before and after the name-prefix index" \
  --from "$WORK/ceiling.json" --from "$WORK/without.json" --from "$WORK/by-id.json" --from "$WORK/with.json" \
  --preamble "$ROOT/scripts/bench/user-search-intro.md" \
  --appendix "Where the CPU went=@$WORK/cpu.md" \
  --appendix "Query plans=@$WORK/plans.md" \
  --appendix "The index=@$WORK/index.md" \
  --note "Data: $users seeded users (\`agora seed users --users 1000000\`, seed 42), in database \`$DB\`" \
  --note "Requests: $PATH_COUNT search paths from real users' names (\`agora scenario search --mix $MIX --seed 1\`), cycled by every client" \
  --note "Server: one \`agora serve\`, release build, pool of $POOL connections (\`AGORA_DB_POOL_SIZE\`), wait timeout 10 s, on $LISTEN" \
  --note "PostgreSQL $server_version: max_connections $(setting max_connections), shared_buffers $(setting shared_buffers), work_mem $(setting work_mem), max_parallel_workers_per_gather $(setting max_parallel_workers_per_gather)" \
  --note "Server, PostgreSQL and load tool share this machine's cores" \
  --out "$OUT" --stem "$STEM" >/dev/null

render_pngs
note "report: $OUT/$STEM.md"
