# shellcheck shell=bash
# Shared by the study scripts (sourced, not run): messages, psql, and the million-user database
# agora_bench on the dev PostgreSQL, which every study measures against.
# Needs AGORA_BIN_DIR, AGORA_PG_BIN and AGORA_PG_PORT (set by ./dev bench).

BIN=${AGORA_BIN_DIR:?run through ./dev bench}
PSQL="$AGORA_PG_BIN/psql"
DB=agora_bench
ADMIN_URL="postgres://agora:agora@127.0.0.1:$AGORA_PG_PORT/postgres"
export AGORA_DATABASE_URL="postgres://agora:agora@127.0.0.1:$AGORA_PG_PORT/$DB"
# These studies measure the social network; the dialogs study sets its own services.
export AGORA_SERVICES=${AGORA_SERVICES:-social}

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

# A PNG beside every chart of the report $OUT/$STEM (the Markdown embeds PNGs; GitHub shows
# them where it would not render our SVG fonts the same).
render_pngs() {
  local svg
  for svg in "$OUT/$STEM"-*.svg; do
    rsvg-convert --background-color=white -o "${svg%.svg}.png" "$svg"
  done
}

# Stops the server the study started (pid $SERVER_PID), if any.
stop_server() {
  [[ -n ${SERVER_PID:-} ]] || return 0
  kill -TERM "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}

# Waits until the server on $LISTEN (pid $SERVER_PID, log $WORK/server.log) is ready with no
# degraded part; dies if it exits or takes over 20 s.
wait_ready() {
  local _
  for _ in $(seq 100); do
    python3 -c 'import sys, json, urllib.request; b = json.load(urllib.request.urlopen(sys.argv[1], timeout=2)); sys.exit(0 if b.get("status") == "ready" and "degraded" not in b else 1)' \
      "http://$LISTEN/ready" 2>/dev/null && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; die "server exited"; }
    sleep 0.2
  done
  die "server not ready (without degraded parts) on $LISTEN"
}

# --- CPU accounting -------------------------------------------------------------------------
# Needs WORK, LISTEN, SERVER_PID, LEVELS, WARMUP, DURATION from the study, and AGORA_PG_PID
# (the postmaster) and AGORA_REDIS_PID from ./dev bench.

# CPU ticks used so far by a process and its reaped children, 0 if it is gone.
cpu_ticks_of() { # pid
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || { echo 0; return; }
  stat=${stat##*) }
  awk '{print $12+$13+$14+$15}' <<<"$stat"
}
# Every PostgreSQL server's postmaster and every backend it has (or had) forked: the main
# server, and the dialogs' shard servers (AGORA_SHARD_SERVERS, "port:pid ..." from ./dev).
postgres_ticks() {
  local total=0 pid postmaster server
  local postmasters=("$AGORA_PG_PID")
  for server in ${AGORA_SHARD_SERVERS:-}; do postmasters+=("${server#*:}"); done
  for postmaster in "${postmasters[@]}"; do
    total=$((total + $(cpu_ticks_of "$postmaster")))
    for pid in $(pgrep -P "$postmaster" || true); do
      total=$((total + $(cpu_ticks_of "$pid")))
    done
  done
  echo "$total"
}
TICKS_PER_SEC=$(getconf CLK_TCK)

# CPU seconds of this shell's finished children (the load tool runs as one), into CHILD_CPU.
# `times` must run in this shell: in a pipeline or $(...) it would count the subshell's children.
children_cpu() {
  times >"$WORK/times"
  CHILD_CPU=$(tail -n1 "$WORK/times" | awk '{
    n = split($1 " " $2, parts, " "); total = 0
    for (i = 1; i <= n; i++) { split(parts[i], ms, /[ms]/); total += ms[1] * 60 + ms[2] }
    print total }')
}
now() { date +%s.%N; }

# One agora-bench run with CPU accounting; writes $WORK/$1.json and $WORK/$1.cpu (wall
# seconds, then CPU seconds of the server, PostgreSQL, Redis and the load tool).
measure() { # name agora-bench-args...
  local name=$1 t0 pg0 srv0 redis0 bench0
  shift
  children_cpu
  t0=$(now) pg0=$(postgres_ticks) srv0=$(cpu_ticks_of "$SERVER_PID")
  redis0=$(cpu_ticks_of "${AGORA_REDIS_PID:-0}") bench0=$CHILD_CPU
  "$BIN/agora-bench" run --target "http://$LISTEN" --ceiling "" --concurrency "$LEVELS" \
    --warmup-secs "$WARMUP" --duration-secs "$DURATION" --out "$WORK" --stem "$name" "$@" >/dev/null
  children_cpu
  awk -v wall="$(awk -v a="$t0" -v b="$(now)" 'BEGIN{print b-a}')" \
    -v srv="$(($(cpu_ticks_of "$SERVER_PID") - srv0))" -v pg="$(($(postgres_ticks) - pg0))" \
    -v redis="$(($(cpu_ticks_of "${AGORA_REDIS_PID:-0}") - redis0))" \
    -v bench="$(awk -v a="$bench0" -v b="$CHILD_CPU" 'BEGIN{print b-a}')" -v hz="$TICKS_PER_SEC" \
    'BEGIN { printf "%.1f %.1f %.1f %.1f %.1f\n", wall, srv / hz, pg / hz, redis / hz, bench }' >"$WORK/$name.cpu"
}

# Markdown: CPU seconds per process over each measured series, and CPU microseconds per request.
cpu_table() { # name...
  local name
  printf '| series | wall s | requests | server CPU s | PostgreSQL CPU s | Redis CPU s | load tool CPU s | cores busy | server µs/req | PostgreSQL µs/req | Redis µs/req | load tool µs/req |\n'
  printf '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n'
  for name in "$@"; do
    python3 - "$WORK/$name.json" "$WORK/$name.cpu" "$WARMUP" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
wall, srv, pg, redis, bench = map(float, open(sys.argv[2]).read().split())
warmup = float(sys.argv[3])
series = report["series"][0]
# The CPU counters cover warm-ups too: count their requests at the level's measured rate.
requests = sum(p["throughput_rps"] * (p["duration_secs"] + warmup) for p in series["points"])
per = lambda cpu: f"{cpu / requests * 1e6:,.0f}" if requests else "-"
print(f"| {series['name']} | {wall:.1f} | {requests:,.0f} | {srv:.1f} | {pg:.1f} | {redis:.1f} | {bench:.1f} | "
      f"{(srv + pg + redis + bench) / wall:.2f} | {per(srv)} | {per(pg)} | {per(redis)} | {per(bench)} |")
PY
  done
  printf '\nCPU seconds over each series'"'"' whole sweep (warm-ups included), from /proc: the server process, the\n'
  printf 'postmasters (main and shard servers) with every backend, Redis, and the load tool. "cores busy" is their sum over wall time;\n'
  printf 'this machine has %s. Per request: CPU over the requests of the sweep, warm-ups counted at the\n' "$(nproc) cores"
  printf 'measured rate of their level.\n'
}

# "tps mean-latency-ms" of one pgbench run of `script` with `clients` for $DURATION seconds.
pgbench_run() { # url script clients
  PGPASSWORD=agora "$AGORA_PG_BIN/pgbench" -n -f "$2" -c "$3" -j "$(($3 < 4 ? $3 : 4))" \
    -T "${DURATION:?}" "$1" 2>/dev/null |
    awk '/^latency average/ { lat = $4 } /^tps/ { tps = $3 } END { printf "%.0f %.3f\n", tps, lat }'
}

# The median of numbers given on standard input, separated by spaces or lines.
median() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
