#!/usr/bin/env bash
# What a stalled log reader costs requests (docs/benchmarks/log-stall.md), reproduced with one
# command: `./dev bench log-stall`, which starts the dev stack and then runs this.
#
# One `agora serve` (release, AGORA_LOG=info, every request writes an access line) has its
# stdout in a pipe read by `cat`. In alternating rounds the reader reads, or is stopped with
# SIGSTOP so the pipe fills; the load tool measures the same requests in both: a profile read
# (GET /user/get/{id}, a database query) and the web front end's sign-in page (GET /signin,
# no database, so the log line is a large share of its work: the worst case).
# Lines that could not be written are dropped and counted (log_lines_dropped_total).
# Throughput is compared with a fixed number of clients (closed model: a faster server gets
# more requests); latency at a fixed arrival rate (open model: both states get the same
# requests, so their p99 compare like for like).
#
# Env: AGORA_BIN_DIR, AGORA_PG_BIN, AGORA_PG_PORT (set by ./dev bench); BENCH_LEVELS (10,100
#      clients), BENCH_PROFILE_RATE (4000/s), BENCH_PAGE_RATE (10000/s), BENCH_WARMUP (2),
#      BENCH_DURATION (10 s a round), BENCH_ROUNDS (3), BENCH_OUT.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export AGORA_SERVICES=social,web
# shellcheck source=common.sh
. "$ROOT/scripts/bench/common.sh"
LEVELS=${BENCH_LEVELS:-10,100}
WARMUP=${BENCH_WARMUP:-2}
DURATION=${BENCH_DURATION:-10}
ROUNDS=${BENCH_ROUNDS:-3}
PROFILE_RATE=${BENCH_PROFILE_RATE:-4000}
PAGE_RATE=${BENCH_PAGE_RATE:-10000}
OUT=${BENCH_OUT:-$ROOT/docs/benchmarks}
STEM=log-stall
LISTEN=127.0.0.1:8095
export AGORA_LOG=info AGORA_OPS_LISTEN=api AGORA_REDIS_URL="redis://127.0.0.1:${AGORA_REDIS_PORT:?}"
WORK="$(mktemp -d)"
SERVER_PID=""
READER_PID=""
cleanup() {
  [[ -z $READER_PID ]] || kill -CONT "$READER_PID" 2>/dev/null || true
  stop_server
  [[ -z $READER_PID ]] || { kill "$READER_PID" 2>/dev/null || true; wait "$READER_PID" 2>/dev/null || true; }
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ensure_bench_data
sql -c "SELECT '/user/get/' || id FROM users TABLESAMPLE SYSTEM (1) REPEATABLE (7) LIMIT 1000" >"$WORK/profiles.txt"

mkfifo "$WORK/stdout"
cat "$WORK/stdout" >/dev/null &
READER_PID=$!
"$BIN/agora" serve --listen "$LISTEN" >"$WORK/stdout" 2>>"$WORK/server.log" &
SERVER_PID=$!
wait_ready

dropped() {
  curl -s "http://$LISTEN/metrics" | awk '$1 == "log_lines_dropped_total" { printf "%d", $2; found = 1 } END { if (!found) print 0 }'
}

for round in $(seq "$ROUNDS"); do
  for state in reading stopped; do
    if [[ $state == stopped ]]; then kill -STOP "$READER_PID"; else kill -CONT "$READER_PID"; fi
    before=$(dropped)
    note "round $round of $ROUNDS, reader $state: profile reads and sign-in pages at $LEVELS clients"
    measure "profile-$state-$round" --series "profile read, reader $state, round $round=@$WORK/profiles.txt"
    measure "page-$state-$round" --series "sign-in page, reader $state, round $round=/signin"
    measure "profile-$state-$round-open" --rate "$PROFILE_RATE" --series "profile read at $PROFILE_RATE/s, reader $state, round $round=@$WORK/profiles.txt"
    measure "page-$state-$round-open" --rate "$PAGE_RATE" --series "sign-in page at $PAGE_RATE/s, reader $state, round $round=/signin"
    # The count is published once a second.
    sleep 1.5
    echo "$state $round $(($(dropped) - before))" >>"$WORK/dropped.txt"
  done
done
kill -CONT "$READER_PID"
stop_server

python3 - "$WORK" "$ROUNDS" >"$WORK/ratios.md" <<'RATIOS'
import json, statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
def points(name):
    return {p["concurrency"]: p for p in json.load(open(f"{work}/{name}.json"))["series"][0]["points"]}
print("| request | clients | reader reading | reader stopped | stopped / reading | p99 reading → stopped | p99 stopped / reading |")
print("|---|---:|---:|---:|---:|---|---:|")
worst_rate, worst_p99 = 1e9, 0
for request, label in (("profile", "GET /user/get/{id}"), ("page", "GET /signin (no database: the log line is a large share)")):
    levels = sorted(points(f"{request}-reading-1"))
    for level in levels:
        def median(state, field):
            values = [points(f"{request}-{state}-{r}")[level] for r in range(1, rounds + 1)]
            if field == "rate":
                return statistics.median(p["throughput_rps"] for p in values)
            return statistics.median(p["latency"]["p99_us"] for p in values) / 1000
        rate_r, rate_s = median("reading", "rate"), median("stopped", "rate")
        p99_r, p99_s = median("reading", "p99"), median("stopped", "p99")
        worst_rate, worst_p99 = min(worst_rate, rate_s / rate_r), max(worst_p99, p99_s / p99_r)
        print(f"| {label} | {level} | {rate_r:,.0f}/s | {rate_s:,.0f}/s | {rate_s / rate_r:.2f} | {p99_r:.2f} → {p99_s:.2f} ms | {p99_s / p99_r:.2f} |")
print()
print("At a fixed arrival rate (open model), the same requests in both states:")
print()
print("| request | offered | p50 reading → stopped | p99 reading → stopped | p99 stopped / reading | p99.9 reading → stopped |")
print("|---|---:|---|---|---:|---|")
worst_p99_open = 0
for request, label in (("profile", "GET /user/get/{id}"), ("page", "GET /signin")):
    def open_median(state, field):
        values = [list(points(f"{request}-{state}-{r}-open").values())[0] for r in range(1, rounds + 1)]
        return statistics.median(p["latency"][field] for p in values) / 1000
    offered = list(points(f"{request}-reading-1-open").values())[0]
    offered = offered.get("target_rate") or offered["throughput_rps"]
    cells = {field: (open_median("reading", field), open_median("stopped", field)) for field in ("p50_us", "p99_us", "p999_us")}
    ratio = cells["p99_us"][1] / cells["p99_us"][0]
    worst_p99_open = max(worst_p99_open, ratio)
    print(f"| {label} | {offered:,.0f}/s | {cells['p50_us'][0]:.2f} → {cells['p50_us'][1]:.2f} ms | {cells['p99_us'][0]:.2f} → {cells['p99_us'][1]:.2f} ms | {ratio:.2f} | {cells['p999_us'][0]:.2f} → {cells['p999_us'][1]:.2f} ms |")
print()
print("Rounds (requests per second, reading / stopped):")
print()
for request in ("profile", "page"):
    for level in sorted(points(f"{request}-reading-1")):
        cells = []
        for r in range(1, rounds + 1):
            a = points(f"{request}-reading-{r}")[level]["throughput_rps"]
            b = points(f"{request}-stopped-{r}")[level]["throughput_rps"]
            cells.append(f"{a:,.0f} / {b:,.0f}")
        print(f"- {request}, {level} clients: " + "; ".join(cells))
print()
dropped = [line.split() for line in open(f"{work}/dropped.txt")]
print("Log lines dropped per round: " + ", ".join(f"reader {s} (round {r}): {n}" for s, r, n in dropped) + ".")
print()
print(f"Worst cases: throughput {worst_rate:.2f} of the undisturbed run with a fixed number of clients; p99 {worst_p99_open:.2f} of it at a fixed arrival rate ({worst_p99:.2f} with a fixed number of clients, where the faster state also carries more requests).")
RATIOS

froms=()
for round in $(seq "$ROUNDS"); do
  for state in reading stopped; do froms+=(--from "$WORK/profile-$state-$round.json"); done
done
for round in $(seq "$ROUNDS"); do
  for state in reading stopped; do froms+=(--from "$WORK/page-$state-$round.json"); done
done
server_version=$(sql -c "SHOW server_version")
"$BIN/agora-bench" render --title "A stalled log reader" "${froms[@]}" \
  --preamble "$ROOT/scripts/bench/log-stall-intro.md" \
  --appendix "Reading against stopped, medians of the rounds=@$WORK/ratios.md" \
  --note "Server: one \`agora serve --services social,web\`, release build, AGORA_LOG=info with an access line per request (the default \`AGORA_ACCESS_LOG=all\`), default buffer of 16,384 lines, stdout a pipe to \`cat\` stopped with SIGSTOP in the 'stopped' rounds" \
  --note "$ROUNDS alternating rounds of ${DURATION} s per request, state and load level; PostgreSQL $server_version (durable), $users seeded users" \
  --note "Server, PostgreSQL, Redis and the load tool share this machine's cores" \
  --out "$OUT" --stem "$STEM" >/dev/null
render_pngs
note "report: $OUT/$STEM.md"
