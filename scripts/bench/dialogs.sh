#!/usr/bin/env bash
# The dialogs study (docs/benchmarks/dialogs.md), reproduced with one command:
# `./dev bench dialogs`, which starts the dev stack (with its two shard servers) and then
# runs this script.
#
# Users and sessions come from database agora_bench on the main dev PostgreSQL (the million
# seeded users shared with the other studies); messages go to a fresh database
# agora_bench_dialogs on each shard server. One `agora serve --services dialogs` is measured,
# in one run:
#   1. the /health ceiling, then sends and first-page reads of 5000 random dialogs between
#      2000 users at 1/10/100/1000 clients, with every logical shard on one shard server;
#   2. the same with the logical shards spread over both servers;
#   3. the pause senders see while 16 logical shards move from one server to the other under
#      a steady load of sends;
# with the CPU each process spent per request.
#
# Env: AGORA_BIN_DIR, AGORA_PG_BIN, AGORA_PG_PORT, AGORA_PG_PID, AGORA_SHARD_SERVERS,
#      AGORA_REDIS_PORT, AGORA_REDIS_PID (set by ./dev bench);
#      BENCH_LEVELS (1,10,100,1000), BENCH_WARMUP (2), BENCH_DURATION (10),
#      BENCH_RESHARD_SHARDS (16), BENCH_OUT (docs/benchmarks).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export AGORA_SERVICES=dialogs
# shellcheck source=common.sh
. "$ROOT/scripts/bench/common.sh"
LEVELS=${BENCH_LEVELS:-1,10,100,1000}
WARMUP=${BENCH_WARMUP:-2}
DURATION=${BENCH_DURATION:-10}
RESHARD_SHARDS=${BENCH_RESHARD_SHARDS:-16}
OUT=${BENCH_OUT:-$ROOT/docs/benchmarks}
STEM=dialogs
LISTEN=127.0.0.1:8092
SHARD_DB=agora_bench_dialogs
REDIS_CLI=(redis-cli -h 127.0.0.1 -p "${AGORA_REDIS_PORT:?}")
export AGORA_REDIS_URL="redis://127.0.0.1:$AGORA_REDIS_PORT"
export AGORA_LOG=warn
WORK="$(mktemp -d)"
RUN_ID="benchdialogs$$"
export AGORA_NAMESPACE=$RUN_ID
SERVER_PID=""

read -ra SHARDS <<<"${AGORA_SHARD_SERVERS:?run through ./dev bench}"
((${#SHARDS[@]} >= 2)) || die "the dialogs study needs two shard servers (./dev starts them)"
shard_port() { local server=${SHARDS[$1]}; echo "${server%%:*}"; }
shard_spec() { # index -> name=url
  echo "shard$(($1 + 1))=postgres://agora:agora@127.0.0.1:$(shard_port "$1")/$SHARD_DB"
}

cleanup() {
  stop_server
  "${REDIS_CLI[@]}" --scan --pattern "$RUN_ID*" 2>/dev/null | xargs -r -n 500 "${REDIS_CLI[@]}" DEL >/dev/null 2>&1 || true
  sql -c "DELETE FROM sessions WHERE expires_at > now() + interval '6 days'" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# configure N: fresh shard databases, and a shard map over the first N shard servers.
configure() {
  local n=$1 i specs=""
  for ((i = 0; i < ${#SHARDS[@]}; i++)); do
    PGPASSWORD=agora "$PSQL" -X -q -v ON_ERROR_STOP=1 \
      "postgres://agora:agora@127.0.0.1:$(shard_port "$i")/postgres" \
      -c "DROP DATABASE IF EXISTS $SHARD_DB WITH (FORCE)" -c "CREATE DATABASE $SHARD_DB" >/dev/null
  done
  sql -c "TRUNCATE dialog_shard_map, dialog_shard_servers" \
    -c "UPDATE dialog_shard_map_version SET version = version + 1" >/dev/null
  for ((i = 0; i < n; i++)); do specs+="${specs:+,}$(shard_spec "$i")"; done
  AGORA_DIALOG_SHARDS=$specs "$BIN/agora" migrate >/dev/null
}

start_server() {
  "$BIN/agora" serve --listen "$LISTEN" >>"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  wait_ready
}

# --- data ---------------------------------------------------------------------------------
export AGORA_OPS_LISTEN=api
ensure_bench_data
note "scenario: 5000 dialogs between 2000 users"
"$BIN/agora" scenario dialogs --users 2000 --dialogs 5000 --out-dir "$WORK/scenario" >/dev/null

# --- 1. one shard server --------------------------------------------------------------------
configure 1
start_server
note "the /health ceiling at $LEVELS clients"
measure ceiling --series "ceiling: GET /health=/health"
note "sends and reads at $LEVELS clients, every logical shard on one server"
measure send-1 --series "send, 1 shard server=@$WORK/scenario/sends.txt"
measure list-1 --series "list, 1 shard server=@$WORK/scenario/lists.txt"
stop_server

# --- 2. two shard servers -------------------------------------------------------------------
configure 2
start_server
note "sends and reads at $LEVELS clients, logical shards spread over two servers"
measure send-2 --series "send, 2 shard servers=@$WORK/scenario/sends.txt"
measure list-2 --series "list, 2 shard servers=@$WORK/scenario/lists.txt"

# --- 3. resharding under load ---------------------------------------------------------------
note "moving $RESHARD_SHARDS logical shards from shard1 to shard2 under 10 senders"
"$BIN/agora-bench" run --target "http://$LISTEN" --ceiling "" --concurrency 10 \
  --warmup-secs 0 --duration-secs 20 --series "send while shards move=@$WORK/scenario/sends.txt" \
  --out "$WORK" --stem reshard-load >/dev/null &
LOAD_PID=$!
sleep 5
"$BIN/agora" dialogs reshard --to "$(shard_spec 1)" --count "$RESHARD_SHARDS" >"$WORK/reshard.txt"
wait "$LOAD_PID"
stop_server

python3 - "$WORK/reshard.txt" "$WORK/reshard-load.json" >"$WORK/reshard.md" <<'PY'
import json, re, sys
pauses, copied = [], 0
for line in open(sys.argv[1]):
    m = re.search(r"(\d+) messages, .* senders paused ([\d.]+) ms", line)
    if m:
        copied += int(m.group(1))
        pauses.append(float(m.group(2)))
pauses.sort()
pick = lambda q: pauses[min(len(pauses) - 1, int(q * len(pauses)))]
point = json.load(open(sys.argv[2]))["series"][0]["points"][0]
lat = point["latency"]
print("| measure | value |")
print("|---|---|")
print(f"| logical shards moved | {len(pauses)} (of 64), {copied:,} messages copied |")
print(f"| freeze per shard (closing the old server's gate to switching the map): p50 / p99 / max | {pick(0.5):.1f} / {pick(0.99):.1f} / {pauses[-1]:.1f} ms |")
print(f"| sends meanwhile (10 clients, 20 s) | {point['throughput_rps']:,.0f} rps, {point['errors']} errors |")
print(f"| send latency over those 20 s: p50 / p99 / max | {lat['p50_us'] / 1000:.1f} / {lat['p99_us'] / 1000:.1f} / {lat['max_us'] / 1000:.1f} ms |")
print()
print("A sender whose dialog's shard is frozen retries until the map names the new server, so the")
print("freeze is the longest extra wait one send can see; the send latencies above include it.")
print("The move started 5 s into the run. Each second of it:")
print()
print("| second | sends | errors | p50 ms | p99 ms |")
print("|---:|---:|---:|---:|---:|")
for second in point["timeline"]:
    print(f"| {second['t']} | {second['ok']:,} | {second['errors']} | {second['p50_us'] / 1000:.1f} | {second['p99_us'] / 1000:.1f} |")
PY

cpu_table ceiling send-1 send-2 list-1 list-2 >"$WORK/cpu.md"
server_version=$(sql -c "SHOW server_version")
"$BIN/agora-bench" render --title "Dialogs: send and list on one and two shard servers, and resharding under load" \
  --from "$WORK/ceiling.json" --from "$WORK/send-1.json" --from "$WORK/send-2.json" \
  --from "$WORK/list-1.json" --from "$WORK/list-2.json" \
  --preamble "$ROOT/scripts/bench/dialogs-intro.md" \
  --appendix "Where the CPU goes=@$WORK/cpu.md" \
  --appendix "Resharding under load=@$WORK/reshard.md" \
  --note "Users: 2000 of the $users seeded users (\`agora seed users --users 1000000\`, seed 42), each with a session; 5000 random dialogs between them (\`agora scenario dialogs\`)" \
  --note "Sends: both sides of each dialog, 10,000 requests cycled; lists: each dialog's first page of 20, read by one side" \
  --note "Server: one \`agora serve --services dialogs\`, release build, default settings, 64 logical shards, on $LISTEN; PostgreSQL $server_version (the main server and $((${#SHARDS[@]})) shard servers, durable), Redis of the dev stack" \
  --note "Server, every PostgreSQL server, Redis and the load tool share this machine's cores" \
  --out "$OUT" --stem "$STEM" >/dev/null

render_pngs
note "report: $OUT/$STEM.md"
