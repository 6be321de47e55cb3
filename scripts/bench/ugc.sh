#!/usr/bin/env bash
# The UGC load study (docs/benchmarks/ugc.md), reproduced with one command: `./dev bench ugc`,
# which starts the dev stack and then runs this script.
#
# Users and sessions come from database agora_bench on the dev PostgreSQL (the million seeded
# users shared with the other studies); UGC writes to a fresh database agora_bench_ugc on the
# same server. One `agora serve --services ugc` is measured at 1/10/100/1000 clients, beside
# the /health ceiling: 2000 users rating, bookmarking and reviewing films drawn by popularity
# (1/rank over 10,000 films), then reading film ratings, review pages (newest and most liked
# first) and their bookmarks, with the CPU each process spent per request.
#
# Env: AGORA_BIN_DIR, AGORA_PG_BIN, AGORA_PG_PORT, AGORA_PG_PID, AGORA_REDIS_PORT,
#      AGORA_REDIS_PID (set by ./dev bench); BENCH_LEVELS (1,10,100,1000), BENCH_WARMUP (2),
#      BENCH_DURATION (10), BENCH_OUT (docs/benchmarks).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export AGORA_SERVICES=ugc
# shellcheck source=common.sh
. "$ROOT/scripts/bench/common.sh"
LEVELS=${BENCH_LEVELS:-1,10,100,1000}
WARMUP=${BENCH_WARMUP:-2}
DURATION=${BENCH_DURATION:-10}
OUT=${BENCH_OUT:-$ROOT/docs/benchmarks}
STEM=ugc
LISTEN=127.0.0.1:8093
UGC_DB=agora_bench_ugc
REDIS_CLI=(redis-cli -h 127.0.0.1 -p "${AGORA_REDIS_PORT:?}")
export AGORA_REDIS_URL="redis://127.0.0.1:$AGORA_REDIS_PORT"
export AGORA_UGC_DATABASE_URL="postgres://agora:agora@127.0.0.1:$AGORA_PG_PORT/$UGC_DB"
export AGORA_LOG=warn AGORA_OPS_LISTEN=api
WORK="$(mktemp -d)"
RUN_ID="benchugc$$"
export AGORA_NAMESPACE=$RUN_ID
SERVER_PID=""

cleanup() {
  stop_server
  "${REDIS_CLI[@]}" --scan --pattern "$RUN_ID*" 2>/dev/null | xargs -r -n 500 "${REDIS_CLI[@]}" DEL >/dev/null 2>&1 || true
  sql -c "DELETE FROM sessions WHERE expires_at > now() + interval '6 days'" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A fresh UGC database every run, dropped before anything migrates it.
PGPASSWORD=agora "$PSQL" -X -q -v ON_ERROR_STOP=1 "$ADMIN_URL" \
  -c "DROP DATABASE IF EXISTS $UGC_DB WITH (FORCE)" >/dev/null
ensure_bench_data
note "scenario: 2000 users, 10,000 films by popularity"
"$BIN/agora" scenario ugc --users 2000 --films 10000 --out-dir "$WORK/scenario" >/dev/null

"$BIN/agora" serve --listen "$LISTEN" >>"$WORK/server.log" 2>&1 &
SERVER_PID=$!
wait_ready

note "the /health ceiling at $LEVELS clients"
measure ceiling --series "ceiling: GET /health=/health"
SERIES=(rate bookmark review film-rating reviews-newest reviews-top bookmarks)
declare -A TITLES=(
  [rate]="PUT rating" [bookmark]="PUT bookmark" [review]="PUT review"
  [film-rating]="GET film rating" [reviews-newest]="GET reviews, newest" [reviews-top]="GET reviews, top"
  [bookmarks]="GET bookmarks"
)
for name in "${SERIES[@]}"; do
  note "${TITLES[$name]} at $LEVELS clients"
  measure "$name" --series "${TITLES[$name]}=@$WORK/scenario/$name.txt"
done
counts=$(PGPASSWORD=agora "$PSQL" -X -q -At "$AGORA_UGC_DATABASE_URL" -c \
  "SELECT (SELECT count(*) FROM ratings) || ' ratings, ' || (SELECT count(*) FROM reviews) || ' reviews, ' || (SELECT count(*) FROM bookmarks) || ' bookmarks'")
stop_server

cpu_table ceiling "${SERIES[@]}" >"$WORK/cpu.md"
server_version=$(sql -c "SHOW server_version")
args=()
for name in ceiling "${SERIES[@]}"; do args+=(--from "$WORK/$name.json"); done
"$BIN/agora-bench" render --title "UGC under load: ratings, bookmarks, reviews" "${args[@]}" \
  --preamble "$ROOT/scripts/bench/ugc-intro.md" \
  --appendix "Where the CPU goes=@$WORK/cpu.md" \
  --note "Users: 2000 of the $users seeded users (\`agora seed users --users 1000000\`, seed 42), each with a session; films: 10,000 UUIDs, drawn as 1/rank (\`agora scenario ugc\`), 20,000 requests per series cycled" \
  --note "After the run UGC's database held $counts" \
  --note "Server: one \`agora serve --services ugc\`, release build, default settings, on $LISTEN; PostgreSQL $server_version (durable: fsync and synchronous_commit on), Redis of the dev stack for the session cache" \
  --note "Server, PostgreSQL, Redis and the load tool share this machine's cores" \
  --out "$OUT" --stem "$STEM" >/dev/null

render_pngs
note "report: $OUT/$STEM.md"
