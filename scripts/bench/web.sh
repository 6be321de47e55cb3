#!/usr/bin/env bash
# The web front end study (docs/benchmarks/web.md), reproduced with one command:
# `./dev bench web`, which starts the dev stack and then runs this script.
#
# In database agora_bench (the million seeded users shared with the other studies), 500 readers
# follow the same 20 authors of 60 posts each, so every reader's feed holds 1000 posts
# (`agora scenario web`). One `agora serve --services social,web` (and a worker) is measured at
# 1/10/100 clients, beside the /health ceiling: the API's feed read of the same 20 posts a home
# page shows (bearer token), the signed-in home page (session cookie), and an author's page,
# with the CPU each process spent per request and the bytes each response weighs.
#
# Env: AGORA_BIN_DIR, AGORA_PG_BIN, AGORA_PG_PORT, AGORA_PG_PID, AGORA_REDIS_PORT,
#      AGORA_REDIS_PID (set by ./dev bench); BENCH_LEVELS (1,10,100), BENCH_WARMUP (2),
#      BENCH_DURATION (10), BENCH_OUT (docs/benchmarks).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export AGORA_SERVICES=social,web
# shellcheck source=common.sh
. "$ROOT/scripts/bench/common.sh"
LEVELS=${BENCH_LEVELS:-1,10,100}
WARMUP=${BENCH_WARMUP:-2}
DURATION=${BENCH_DURATION:-10}
OUT=${BENCH_OUT:-$ROOT/docs/benchmarks}
STEM=web
LISTEN=127.0.0.1:8094
REDIS_CLI=(redis-cli -h 127.0.0.1 -p "${AGORA_REDIS_PORT:?}")
export AGORA_REDIS_URL="redis://127.0.0.1:$AGORA_REDIS_PORT"
export AGORA_LOG=warn AGORA_OPS_LISTEN=api
WORK="$(mktemp -d)"
RUN_ID="benchweb$$"
export AGORA_NAMESPACE=$RUN_ID
SERVER_PID=""
WORKER_PID=""

cleanup() {
  stop_server
  [[ -z $WORKER_PID ]] || { kill -TERM "$WORKER_PID" 2>/dev/null || true; wait "$WORKER_PID" 2>/dev/null || true; }
  "${REDIS_CLI[@]}" --scan --pattern "$RUN_ID*" 2>/dev/null | xargs -r -n 500 "${REDIS_CLI[@]}" DEL >/dev/null 2>&1 || true
  sql -c "DELETE FROM sessions WHERE expires_at > now() + interval '6 days'" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ensure_bench_data
note "scenario: 500 readers following 20 authors of 60 posts (feeds of 1000)"
"$BIN/agora" scenario web --readers 500 --authors 20 --posts-per-author 60 --out-dir "$WORK/scenario" >/dev/null

"$BIN/agora" worker >>"$WORK/worker.log" 2>&1 &
WORKER_PID=$!
"$BIN/agora" serve --listen "$LISTEN" >>"$WORK/server.log" 2>&1 &
SERVER_PID=$!
wait_ready

# Bytes of one response of each kind, as a browser or client receives it (no compression).
read -r first_line <"$WORK/scenario/home.txt"
token=${first_line#* }
read -r user_line <"$WORK/scenario/user.txt"
user_path=${user_line%% *}
bytes() { curl -s -o /dev/null -w '%{size_download}' "$@"; }
api_bytes=$(bytes -H "Authorization: Bearer $token" "http://$LISTEN/post/feed?offset=0&limit=20")
home_bytes=$(bytes -H "Cookie: agora_session=$token" "http://$LISTEN/")
user_bytes=$(bytes -H "Cookie: agora_session=$token" "http://$LISTEN$user_path")
home_posts=$(curl -s -H "Cookie: agora_session=$token" "http://$LISTEN/" | grep -c 'class="post"' || true)
feed_len=$(curl -s -H "Authorization: Bearer $token" "http://$LISTEN/post/feed?offset=980&limit=20" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
css_bytes=$(bytes "http://$LISTEN$(curl -s -H "Cookie: agora_session=$token" "http://$LISTEN/" | grep -o '/assets/app\.[0-9a-f]*\.css')")
js_bytes=$(bytes "http://$LISTEN$(curl -s -H "Cookie: agora_session=$token" "http://$LISTEN/" | grep -o '/assets/live\.[0-9a-f]*\.js')")
note "bytes: API feed $api_bytes, home $home_bytes ($home_posts posts), user page $user_bytes; feed posts 981-1000: $feed_len"

note "the /health ceiling at $LEVELS clients"
measure ceiling --series "ceiling: GET /health=/health"
note "API feed read (20 posts) at $LEVELS clients"
measure api-feed --series "API: GET /post/feed, 20 posts=@$WORK/scenario/api-feed.txt"
note "home page at $LEVELS clients"
measure home --token-cookie agora_session --series "page: home, signed in, feed of 1000=@$WORK/scenario/home.txt"
note "user page at $LEVELS clients"
measure user --token-cookie agora_session --series "page: an author's page=@$WORK/scenario/user.txt"
stop_server

cpu_table ceiling api-feed home user >"$WORK/cpu.md"
{
  echo "| response | bytes |"
  echo "|---|---:|"
  echo "| API feed read, 20 posts (JSON) | $api_bytes |"
  echo "| home page, signed in, 20 of the feed's 1000 posts (HTML) | $home_bytes |"
  echo "| an author's page, 20 of their posts (HTML) | $user_bytes |"
  echo "| the stylesheet (once; cached for a year) | $css_bytes |"
  echo "| the live-feed script (once; cached for a year) | $js_bytes |"
  echo
  echo "Uncompressed, as sent (agora does not compress; a proxy in front may). Each reader's feed"
  echo "held $((980 + feed_len)) posts (the API returned $feed_len posts at offset 980)."
} >"$WORK/bytes.md"
server_version=$(sql -c "SHOW server_version")
"$BIN/agora-bench" render --title "The web front end: pages beside the API" \
  --from "$WORK/ceiling.json" --from "$WORK/api-feed.json" --from "$WORK/home.json" --from "$WORK/user.json" \
  --preamble "$ROOT/scripts/bench/web-intro.md" \
  --appendix "What each response weighs=@$WORK/bytes.md" \
  --appendix "Where the CPU goes=@$WORK/cpu.md" \
  --note "Readers: 500 of the $users seeded users (\`agora seed users --users 1000000\`, seed 42), each following the same 20 authors with 60 posts of ~210 characters (\`agora scenario web\`), each with a session; the same token as a bearer header for the API and as the \`agora_session\` cookie for pages" \
  --note "Server: one \`agora serve --services social,web\` and one \`agora worker\`, release build, default settings, on $LISTEN; PostgreSQL $server_version (durable), Redis of the dev stack" \
  --note "Server, PostgreSQL, Redis and the load tool share this machine's cores" \
  --out "$OUT" --stem "$STEM" >/dev/null

render_pngs
note "report: $OUT/$STEM.md"
