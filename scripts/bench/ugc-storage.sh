#!/usr/bin/env bash
# The UGC storage study (docs/benchmarks/ugc-storage.md), reproduced with one command:
# `./dev bench ugc-storage`, which starts the dev stack and the study's ClickHouse and Tarantool
# (`./dev ugc-stores up`), builds release binaries, then runs this. It starts a Redis of its own
# (the study flushes it; the dev stack's Redis holds sessions) and a database of its own on the
# dev PostgreSQL, loads the same generated data into each store and measures them one after
# another with `agora-bench ugc-storage`.
#
# Env: AGORA_BIN_DIR, AGORA_PG_BIN, AGORA_PG_PORT (set by ./dev bench), AGORA_UGC_* (from
#      ./dev ugc-stores env); BENCH_SCALE (1: 10M ratings), BENCH_CLIENTS (16),
#      BENCH_DURATION (10), BENCH_STORES (postgres,clickhouse,redis,tarantool),
#      BENCH_OUT (docs/benchmarks).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=common.sh
. "$ROOT/scripts/bench/common.sh"
OUT=${BENCH_OUT:-$ROOT/docs/benchmarks}
STEM=ugc-storage
STUDY_DB=agora_ugc_study
REDIS_PORT=61381
REDIS_DIR="$ROOT/.stack/dev/ugc/study-redis"
REDIS_PID=""

cleanup() {
  if [[ -n $REDIS_PID ]]; then
    kill -TERM "$REDIS_PID" 2>/dev/null || true
    wait "$REDIS_PID" 2>/dev/null || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

(exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT") 2>/dev/null && die "port $REDIS_PORT is taken"
mkdir -p "$REDIS_DIR"
# Persistence as the dev stack's Redis has it: an append-only file, fsync'd once a second.
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$REDIS_DIR" --save "" \
  --appendonly yes --appendfsync everysec --logfile "$REDIS_DIR/redis.log" &
REDIS_PID=$!
for _ in $(seq 50); do
  [[ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]] && break
  sleep 0.1
done

PGPASSWORD=agora "$PSQL" -X -q -At "$ADMIN_URL" -c "SELECT 1 FROM pg_database WHERE datname = '$STUDY_DB'" | grep -q 1 ||
  PGPASSWORD=agora "$PSQL" -X -q "$ADMIN_URL" -c "CREATE DATABASE $STUDY_DB" || die "could not create database $STUDY_DB"

note "measuring ${BENCH_STORES:-postgres,clickhouse,redis,tarantool} at scale ${BENCH_SCALE:-1} (about 4 minutes per store at scale 1)"
"$BIN/agora-bench" ugc-storage \
  --stores "${BENCH_STORES:-postgres,clickhouse,redis,tarantool}" \
  --postgres-url "postgres://agora:agora@127.0.0.1:$AGORA_PG_PORT/$STUDY_DB" \
  --redis-url "redis://127.0.0.1:$REDIS_PORT" \
  --scale "${BENCH_SCALE:-1}" --clients "${BENCH_CLIENTS:-16}" --duration-secs "${BENCH_DURATION:-10}" \
  --preamble "$ROOT/scripts/bench/ugc-storage-intro.md" \
  --conclusion "$ROOT/scripts/bench/ugc-storage-choice.md" \
  --out "$OUT" --stem "$STEM"
render_pngs
note "wrote $OUT/$STEM.md"
