#!/usr/bin/env bash
# The news feed study (docs/benchmarks/feed.md), reproduced with one command:
# `./dev bench feed`, which starts the dev stack and then runs this script.
#
# In database agora_bench on the dev PostgreSQL (a million seeded users, shared with the
# user-search study; seeded here if missing) it measures, in one run:
#   1. feed reads (cache hits) at 1/10/100/1000 clients, each as one of 2000 real users, beside
#      the /health ceiling: first as before the hardening issue, with every bearer token looked
#      up in PostgreSQL and every post body fetched from Redis (AGORA_SESSION_CACHE_TTL_MS=0,
#      AGORA_POST_MEMORY_CACHE_BYTES=0), then with the session cache and the in-memory post
#      bodies (the defaults), with the CPU each process spent per request;
#   2. post-to-feed delay of ordinary posts (20/s) while the top celebrity (made to have a
#      million followers) posts once: with the default threshold (the celebrity is merged at
#      read time), then with the threshold raised so the celebrity is pushed to every follower's
#      warmed feed;
#   3. post-to-socket delay with thousands of live sockets open, and server memory per socket;
#   4. Redis memory of a full 1000-entry feed in our layout against a sorted set.
#
# Env: AGORA_BIN_DIR, AGORA_PG_BIN, AGORA_PG_PORT, AGORA_REDIS_PORT (set by ./dev);
#      BENCH_LEVELS (1,10,100,1000), BENCH_WARMUP (2), BENCH_DURATION (10), BENCH_SOCKETS (5000),
#      BENCH_RATE (20 ordinary posts/s), BENCH_CELEBRITY_FOLLOWERS (1000000: the top celebrity is
#      made to have at least this many followers), BENCH_OUT (docs/benchmarks).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=common.sh
. "$ROOT/scripts/bench/common.sh"
LEVELS=${BENCH_LEVELS:-1,10,100,1000}
WARMUP=${BENCH_WARMUP:-2}
DURATION=${BENCH_DURATION:-10}
SOCKETS=${BENCH_SOCKETS:-5000}
RATE=${BENCH_RATE:-20}
CELEBRITY_FOLLOWERS=${BENCH_CELEBRITY_FOLLOWERS:-1000000}
OUT=${BENCH_OUT:-$ROOT/docs/benchmarks}
STEM=feed
LISTEN=127.0.0.1:8091
REDIS_CLI=(redis-cli -h 127.0.0.1 -p "${AGORA_REDIS_PORT:?}")
export AGORA_REDIS_URL="redis://127.0.0.1:$AGORA_REDIS_PORT"
export AGORA_LOG=warn
WORK="$(mktemp -d)"
RUN_ID="benchfeed$$"
PIDS=()

stop_platform() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  PIDS=()
}
cleanup() {
  stop_platform
  # This run's Redis keys and the sessions its scenario created.
  "${REDIS_CLI[@]}" --scan --pattern "$RUN_ID*" 2>/dev/null | xargs -r -n 500 "${REDIS_CLI[@]}" DEL >/dev/null 2>&1 || true
  sql -c "DELETE FROM sessions WHERE expires_at > now() + interval '6 days'" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
(( $(ulimit -n) > SOCKETS * 2 + 1000 )) || die "open-file limit $(ulimit -n) is too low for $SOCKETS sockets"

# --- data ---------------------------------------------------------------------------------
ensure_bench_data
note "scenario: 2000 readers, 200 author/follower pairs, the top celebrity, $SOCKETS live sockets"
"$BIN/agora" scenario feed --readers 2000 --pairs 200 --live-sockets "$SOCKETS" --live-authors 10 \
  --celebrity-min-followers "$CELEBRITY_FOLLOWERS" --out-dir "$WORK/scenario" >/dev/null
read -r CELEBRITY _ FOLLOWERS _ _ <"$WORK/scenario/celebrity.txt"
note "celebrity $CELEBRITY has $FOLLOWERS followers"

# --- platform -----------------------------------------------------------------------------
# start_platform NAMESPACE [ENV=VALUE...]: one server and one worker on a fresh namespace.
start_platform() {
  local namespace=$1
  shift
  env AGORA_NAMESPACE="$namespace" "$@" "$BIN/agora" worker >>"$WORK/worker.log" 2>&1 &
  PIDS+=($!)
  env AGORA_NAMESPACE="$namespace" AGORA_LISTEN=$LISTEN AGORA_OPS_LISTEN=api "$@" "$BIN/agora" serve >>"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  wait_ready
}

# --- 1. feed reads, 2. propagation with the celebrity pulled, 3. live -----------------------
warm() {
  "$BIN/agora-bench" run --target "http://$LISTEN" --ceiling "" --series "warm=@$WORK/scenario/reads.txt" \
    --concurrency 8 --warmup-secs 0 --duration-secs 5 --out "$WORK" --stem warm >/dev/null
}
start_platform "$RUN_ID-pull" AGORA_SESSION_CACHE_TTL_MS=0 AGORA_POST_MEMORY_CACHE_BYTES=0
note "warming 2000 readers' feeds"
warm
note "feed reads at $LEVELS clients, every token looked up in PostgreSQL, every body in Redis (before)"
measure reads-before --series "feed read, token checked in PostgreSQL, bodies from Redis (before)=@$WORK/scenario/reads.txt"
stop_platform
start_platform "$RUN_ID-pull"
warm
note "the /health ceiling at $LEVELS clients"
measure ceiling --series "ceiling: GET /health=/health"
note "feed reads at $LEVELS clients, with the session cache"
measure reads --series "feed read (cache hit)=@$WORK/scenario/reads.txt"
feed_keys=$("${REDIS_CLI[@]}" --scan --pattern "$RUN_ID-pull:feed:*" | wc -l)

note "post-to-feed, celebrity merged at read time"
"$BIN/agora-bench" propagation --target "http://$LISTEN" --pairs "$WORK/scenario/pairs.txt" \
  --celebrity "$WORK/scenario/celebrity.txt" --rate "$RATE" --duration-secs 30 --celebrity-at-secs 5 \
  --label "celebrity merged at read time (default)" --out "$WORK/pull.json"

note "live delivery with $SOCKETS sockets"
"$BIN/agora-bench" live --target "http://$LISTEN" --sockets "$WORK/scenario/live-sockets.txt" \
  --authors "$WORK/scenario/live-authors.txt" --posts 40 --rate 4 --server-pid "$SERVER_PID" \
  --out "$WORK/live.json"
stop_platform

# --- 2b. propagation with the celebrity pushed into every follower's feed ------------------
start_platform "$RUN_ID-push" AGORA_FEED_CELEBRITY_FOLLOWERS=100000000
note "warming the celebrity's $FOLLOWERS followers' feeds (they must be active to be pushed)"
started=$(date +%s.%N)
env AGORA_NAMESPACE="$RUN_ID-push" AGORA_FEED_CELEBRITY_FOLLOWERS=100000000 \
  "$BIN/agora" feed rebuild --followers-of "$CELEBRITY"
WARM_SECS=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN{printf "%.0f", b-a}')
note "post-to-feed, celebrity pushed to every active follower"
"$BIN/agora-bench" propagation --target "http://$LISTEN" --pairs "$WORK/scenario/pairs.txt" \
  --celebrity "$WORK/scenario/celebrity.txt" --rate "$RATE" --duration-secs 30 --celebrity-at-secs 5 \
  --label "celebrity pushed to $FOLLOWERS feeds" --out "$WORK/push.json"
push_feed_keys=$("${REDIS_CLI[@]}" --scan --pattern "$RUN_ID-push:feed:*" | wc -l)
stop_platform

"$BIN/agora-bench" propagation-report --from "$WORK/pull.json" --from "$WORK/push.json" \
  --out "$WORK/propagation.md" >/dev/null
cp "$WORK/propagation.svg" "$OUT/$STEM-propagation.svg"
sed -i "s/(propagation.png)/($STEM-propagation.png)/; s/(propagation.svg)/($STEM-propagation.svg)/" "$WORK/propagation.md"

# --- 4. Redis memory of a full feed -------------------------------------------------------
python3 - "$WORK/feed.bin" <<'PY'
import struct, sys
ids = [154205932482560001 + 1024 * k for k in range(1000)]
with open(sys.argv[1], "wb") as f:
    f.write(b"1" + b"".join(struct.pack(">q", i) for i in sorted(ids, reverse=True)))
with open(sys.argv[1] + ".zadd", "w") as f:
    f.write(" ".join(f"{i} {i}" for i in ids))
PY
"${REDIS_CLI[@]}" -x SET "$RUN_ID:memory:packed" <"$WORK/feed.bin" >/dev/null
# shellcheck disable=SC2046
"${REDIS_CLI[@]}" ZADD "$RUN_ID:memory:zset" $(cat "$WORK/feed.bin.zadd") >/dev/null
packed=$("${REDIS_CLI[@]}" MEMORY USAGE "$RUN_ID:memory:packed")
zset=$("${REDIS_CLI[@]}" MEMORY USAGE "$RUN_ID:memory:zset")
redis_version=$("${REDIS_CLI[@]}" INFO server | awk -F: '/^redis_version/ {print $2}' | tr -d '\r')
{
  printf '| layout | bytes for 1000 post ids (`MEMORY USAGE`) |\n|---|---:|\n'
  printf '| ours: one string, flag byte + 8-byte big-endian ids | %s |\n' "$packed"
  printf '| a sorted set of the same ids (id as member and score) | %s |\n\n' "$zset"
  awk -v p="$packed" -v z="$zset" 'BEGIN{printf "The sorted set takes %.1f× the memory. ", z/p}'
  printf 'Redis %s. Feeds cached during this run: %s in the read phase, %s in the push phase (the celebrity'"'"'s warmed followers).\n' \
    "$redis_version" "$feed_keys" "$push_feed_keys"
} >"$WORK/memory.md"

{
  cat "$WORK/propagation.md"
  printf '\nWarming the %s followers'"'"' feeds (`agora feed rebuild --followers-of %s`) took %s s.\n' "$FOLLOWERS" "$CELEBRITY" "$WARM_SECS"
} >"$WORK/propagation-all.md"

server_version=$(sql -c "SHOW server_version")
cpu_table ceiling reads-before reads >"$WORK/cpu.md"
"$BIN/agora-bench" render --title "News feed: reads, fan-out without the Lady Gaga effect, live delivery" \
  --from "$WORK/ceiling.json" --from "$WORK/reads-before.json" --from "$WORK/reads.json" \
  --preamble "$ROOT/scripts/bench/feed-intro.md" \
  --appendix "Where the CPU of a feed read goes=@$WORK/cpu.md" \
  --appendix "Post to feed, with a celebrity posting=@$WORK/propagation-all.md" \
  --appendix "Live delivery over WebSocket=@$WORK/live.md" \
  --appendix "Redis memory per feed=@$WORK/memory.md" \
  --note "Data: $users seeded users (\`agora seed users --users 1000000\`, seed 42), in database \`$DB\`" \
  --note "Readers: 2000 real users with friends, each with their own session (\`agora scenario feed\`), feeds warmed before measuring" \
  --note "Server: one \`agora serve\` and one \`agora worker\`, release build, default settings, on $LISTEN; PostgreSQL $server_version, Redis $redis_version, RabbitMQ of the dev stack" \
  --note "Server, worker, PostgreSQL, Redis, RabbitMQ and the load tool share this machine's cores" \
  --out "$OUT" --stem "$STEM" >/dev/null

render_pngs
note "report: $OUT/$STEM.md"
