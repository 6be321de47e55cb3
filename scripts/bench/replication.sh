#!/usr/bin/env bash
# The replication study (docs/benchmarks/replication.md), reproduced with one command:
# `./dev bench replication`, which starts the dev stack with its replicated formation
# (pg_auto_failover: a primary and two replicas) and the monitoring exporters, then runs this.
#
# One `agora serve` reads the million seeded users (database agora_bench on the formation) in
# one run:
#   1. the /health ceiling;
#   2. a read-heavy mix (profile reads and name-prefix searches) at each level of clients,
#      with 0, 1 and 2 replicas in rotation, and how many reads each server answered;
#   3. post creation at each level of clients with quorum commit (ANY 1 of the replicas
#      confirms) and with asynchronous streaming, twice each, alternating: what the synchronous
#      quorum costs a write, and the replicas' flush lag that a quorum commit waits for;
# with the CPU each PostgreSQL server spent, read from process-exporter.
#
# Env: AGORA_BIN_DIR, AGORA_PG_BIN, AGORA_REPLICA_PORTS ("61451 61452 61453"),
#      AGORA_PROCESS_EXPORTER (host:port), AGORA_REDIS_PORT (set by ./dev bench);
#      BENCH_LEVELS (1,10,100), BENCH_WARMUP (2), BENCH_DURATION (10), BENCH_OUT (docs/benchmarks).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
read -ra NODE_PORTS <<<"${AGORA_REPLICA_PORTS:?run through ./dev bench}"
# common.sh's single-server URLs, replaced below by the formation's.
export AGORA_PG_PORT=${NODE_PORTS[0]}
# shellcheck source=common.sh
. "$ROOT/scripts/bench/common.sh"
LEVELS=${BENCH_LEVELS:-1,10,100}
WARMUP=${BENCH_WARMUP:-2}
DURATION=${BENCH_DURATION:-10}
OUT=${BENCH_OUT:-$ROOT/docs/benchmarks}
STEM=replication
LISTEN=127.0.0.1:8093
EXPORTER=${AGORA_PROCESS_EXPORTER:?run through ./dev bench}
NODES=(n1 n2 n3)
export AGORA_REDIS_URL="redis://127.0.0.1:${AGORA_REDIS_PORT:?}"
export AGORA_LOG=warn AGORA_OPS_LISTEN=api
export AGORA_NAMESPACE="benchrepl$$"
WORK="$(mktemp -d)"
SERVER_PID=""

hosts=""
for port in "${NODE_PORTS[@]}"; do hosts+="${hosts:+,}127.0.0.1:$port"; done
ADMIN_URL="postgres://agora:agora@$hosts/postgres?target_session_attrs=read-write"
export AGORA_DATABASE_URL="postgres://agora:agora@$hosts/$DB?target_session_attrs=read-write"
node_url() { echo "postgres://agora:agora@127.0.0.1:${NODE_PORTS[$1]}/$DB"; }

# No feed worker runs here (its fan-out would blur what a commit costs): the feed changes the
# study's posts queue are dropped, or the next run's server would report its worker as behind.
drop_feed_changes() { sql -c "TRUNCATE feed_outbox" >/dev/null 2>&1 || true; }
cleanup() {
  stop_server
  sql -c "DELETE FROM posts WHERE text LIKE 'replication study %'" >/dev/null 2>&1 || true
  drop_feed_changes
  sql -c "DELETE FROM sessions WHERE user_id IN (SELECT id FROM users ORDER BY id LIMIT 50)" >/dev/null 2>&1 || true
  "$ROOT/dev" replication sync dev >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start_server() { # replicas spec ("" for none)
  if [[ -n $1 ]]; then export AGORA_DATABASE_REPLICAS=$1; else unset AGORA_DATABASE_REPLICAS; fi
  "$BIN/agora" serve --listen "$LISTEN" >>"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  wait_ready
}

# Which nodes are replicas now (a failover may have moved the primary since the last run).
PRIMARY="" STANDBYS=()
for i in "${!NODES[@]}"; do
  role=$(PGPASSWORD=agora "$PSQL" -X -At "$(node_url "$i" | sed "s#/$DB#/postgres#")" -c "SELECT pg_is_in_recovery()")
  if [[ $role == t ]]; then STANDBYS+=("$i"); else PRIMARY=$i; fi
done
[[ -n $PRIMARY && ${#STANDBYS[@]} -eq 2 ]] || die "the formation needs a primary and two replicas (./dev replication state)"
replica_spec() { # how many
  local spec="" k
  for ((k = 0; k < $1; k++)); do spec+="${spec:+,}${NODES[${STANDBYS[$k]}]}=$(node_url "${STANDBYS[$k]}")"; done
  echo "$spec"
}

# CPU seconds so far of each process group process-exporter tracks (postgres-n1, agora, ...).
cpu_snapshot() { # file
  curl -sf "http://$EXPORTER/metrics" | python3 -c '
import re, sys
totals = {}
for line in sys.stdin:
    m = re.match(r"namedprocess_namegroup_cpu_seconds_total\{groupname=\"([^\"]+)\",mode=\"[^\"]+\"\} (\S+)", line)
    if m:
        totals[m.group(1)] = totals.get(m.group(1), 0.0) + float(m.group(2))
for name, value in sorted(totals.items()):
    print(name, value)' >"$1"
}
# Reads each server answered so far, from the server's own metrics.
reads_snapshot() { # file
  curl -sf "http://$LISTEN/metrics" | sed -n 's/^db_reads_total{host="\([^"]*\)"} \(.*\)/\1 \2/p' >"$1"
}

# One agora-bench run, with the CPU of every process group and the reads per server over it.
measure() { # name agora-bench-args...
  local name=$1 started
  shift
  cpu_snapshot "$WORK/$name.cpu0"
  reads_snapshot "$WORK/$name.reads0"
  started=$(date +%s.%N)
  "$BIN/agora-bench" run --target "http://$LISTEN" --ceiling "" --concurrency "$LEVELS" \
    --warmup-secs "$WARMUP" --duration-secs "$DURATION" --out "$WORK" --stem "$name" "$@" >/dev/null
  awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { print b - a }' >"$WORK/$name.wall"
  cpu_snapshot "$WORK/$name.cpu1"
  reads_snapshot "$WORK/$name.reads1"
}

# --- data -----------------------------------------------------------------------------------
ensure_bench_data
drop_feed_changes
note "requests: 4000 profile reads and name-prefix searches of real users"
"$BIN/agora" scenario smoke --count 4000 --out "$WORK/mix-all.txt" >/dev/null
# The read-heavy mix of the brief: profiles and searches (the smoke scenario also reads posts).
grep -E '^/user/(get|search)' "$WORK/mix-all.txt" >"$WORK/reads.txt"
sql -c "SELECT id FROM users ORDER BY id LIMIT 50" >"$WORK/writers.txt"
: >"$WORK/writes.txt"

# --- 1-2. reads with 0, 1 and 2 replicas ----------------------------------------------------
start_server ""
# 50 writers log in through the server: their tokens are real sessions.
while read -r id; do
  token=$(curl -sf -X POST "http://$LISTEN/login" -H 'content-type: application/json' \
    -d "{\"id\":\"$id\",\"password\":\"seed-password\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
  for n in 1 2 3 4; do
    printf 'POST /post/create %s {"text":"replication study %s-%s"}\n' "$token" "$id" "$n" >>"$WORK/writes.txt"
  done
done <"$WORK/writers.txt"
note "the /health ceiling at $LEVELS clients"
measure ceiling --series "ceiling: GET /health=/health"
note "reads at $LEVELS clients on the primary alone"
measure reads-0 --series "reads, primary only=@$WORK/reads.txt"
stop_server
for n in 1 2; do
  start_server "$(replica_spec "$n")"
  note "reads at $LEVELS clients with $n replica(s)"
  measure "reads-$n" --series "reads, $n replica$([[ $n == 2 ]] && echo s)=@$WORK/reads.txt"
  stop_server
done

# --- 3. the cost of the synchronous quorum ---------------------------------------------------
# Two rounds of quorum then asynchronous, so that drift over the run (checkpoints, a growing
# table) does not pass for the difference. Meanwhile the primary's pg_stat_replication is
# sampled: flush_lag of the faster replica is what a quorum commit waits for.
sample_flush_lag() { # file
  while :; do
    sql -c "SELECT round(min(extract(epoch FROM flush_lag)) * 1000, 3) FROM pg_stat_replication" >>"$1" 2>/dev/null || true
    sleep 0.25
  done
}
measure_writes() { # name label
  sample_flush_lag "$WORK/$1.lag" &
  local sampler=$!
  measure "$1" --series "$2=@$WORK/writes.txt"
  kill "$sampler" 2>/dev/null || true
  wait "$sampler" 2>/dev/null || true
}
start_server ""
for round in 1 2; do
  "$ROOT/dev" replication sync dev >"$WORK/mode-sync.txt"
  note "post creation at $LEVELS clients, quorum commit, round $round ($(cat "$WORK/mode-sync.txt"))"
  measure_writes "writes-sync-$round" "post/create, quorum commit, round $round"
  "$ROOT/dev" replication async dev >"$WORK/mode-async.txt"
  note "post creation at $LEVELS clients, asynchronous, round $round ($(cat "$WORK/mode-async.txt"))"
  measure_writes "writes-async-$round" "post/create, asynchronous, round $round"
done
"$ROOT/dev" replication sync dev >/dev/null
stop_server

# --- report ---------------------------------------------------------------------------------
primary_name=${NODES[$PRIMARY]}
replica_names="${NODES[${STANDBYS[0]}]} ${NODES[${STANDBYS[1]}]}"
python3 - "$WORK" "$primary_name" "$replica_names" "$OUT/$STEM-cpu.svg" >"$WORK/tables.md" <<'PY'
import json, sys
work, primary, replicas, svg_path = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4]
servers = [primary] + replicas
runs = [("reads-0", "reads, primary only"), ("reads-1", "reads, 1 replica"),
        ("reads-2", "reads, 2 replicas")]
writes = [(f"writes-{mode}-{round_}", f"post/create, {label}, round {round_}")
          for round_ in (1, 2) for mode, label in (("sync", "quorum commit"), ("async", "asynchronous"))]
runs += writes

def snapshot(path):
    values = {}
    for line in open(path):
        name, value = line.split()
        values[name] = float(value)
    return values

def delta(name, kind):
    before, after = snapshot(f"{work}/{name}.{kind}0"), snapshot(f"{work}/{name}.{kind}1")
    return {key: after[key] - before.get(key, 0.0) for key in after}

print("### Where the reads went\n")
print("Reads each server answered over the whole sweep (warm-ups included), from agora's `db_reads_total`.\n")
print("| series | " + " | ".join(f"{s} ({'primary' if s == primary else 'replica'})" for s in servers) + " |")
print("|---|" + "---:|" * len(servers))
for name, label in runs[:3]:
    reads = delta(name, "reads")
    total = sum(reads.values())
    cells = []
    for server in servers:
        count = reads.get("primary" if server == primary else server, 0.0)
        cells.append(f"{count:,.0f} ({count / total * 100:.0f} %)" if total else "-")
    if not total:
        cells = ["all (no replica configured)"] + ["-"] * (len(servers) - 1)
    print(f"| {label} | " + " | ".join(cells) + " |")

print("\n### CPU per PostgreSQL server\n")
print("CPU seconds over each series' whole sweep, from process-exporter (each server's postmaster and its backends),")
print("and per 1,000 requests.\n")
groups = [f"postgres-{s}" for s in servers] + ["agora"]
print("| series | wall s | requests | " + " | ".join(f"{g} CPU s" for g in groups) + " | PostgreSQL CPU ms per 1,000 requests |")
print("|---|---:|---:|" + "---:|" * len(groups) + "---:|")
bars = []
for name, label in runs:
    cpu = delta(name, "cpu")
    wall = float(open(f"{work}/{name}.wall").read())
    report = json.load(open(f"{work}/{name}.json"))
    series = report["series"][0]
    requests = sum(p["throughput_rps"] * (p["duration_secs"] + 2) for p in series["points"])
    pg = sum(cpu.get(f"postgres-{s}", 0.0) for s in servers)
    cells = " | ".join(f"{cpu.get(g, 0.0):.1f}" for g in groups)
    print(f"| {label} | {wall:.0f} | {requests:,.0f} | {cells} | {pg / requests * 1e6:,.0f} |" if requests else f"| {label} | {wall:.0f} | 0 | {cells} | - |")
    bars.append((label, [cpu.get(f"postgres-{s}", 0.0) / wall for s in servers]))

print("\n### What a quorum commit waits for\n")
print("`flush_lag` of the faster replica in the primary's `pg_stat_replication`, sampled every 0.25 s during")
print("each write series: how long after a commit's WAL was written locally the first replica had it")
print("on disk. A quorum commit waits that long; an asynchronous one does not wait at all.\n")
print("| series | samples | p50 ms | p90 ms | max ms |")
print("|---|---:|---:|---:|---:|")
for name, label in writes:
    samples = sorted(float(line) for line in open(f"{work}/{name}.lag") if line.strip())
    if samples:
        pick = lambda q: samples[min(len(samples) - 1, int(q * len(samples)))]
        print(f"| {label} | {len(samples)} | {pick(0.5):.2f} | {pick(0.9):.2f} | {samples[-1]:.2f} |")
    else:
        print(f"| {label} | 0 | - | - | - |")

# A stacked bar per series: cores each PostgreSQL server kept busy on average.
colors = ["#1f77b4", "#ff7f0e", "#2ca02c"]
width, height, left, top, bar_h, gap = 820, 60 + 38 * len(bars), 270, 40, 24, 14
scale_max = max(0.5, max(sum(v) for _, v in bars))
scale = (width - left - 40) / scale_max
parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
         f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14">Cores busy per PostgreSQL server (process-exporter)</text>']
for index, (label, values) in enumerate(bars):
    y = top + index * (bar_h + gap)
    parts.append(f'<text x="{left - 8}" y="{y + bar_h * 0.7}" text-anchor="end">{label}</text>')
    x = left
    for server_index, value in enumerate(values):
        w = value * scale
        parts.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{colors[server_index % 3]}"/>')
        x += w
    parts.append(f'<text x="{x + 4:.1f}" y="{y + bar_h * 0.7}">{sum(values):.2f}</text>')
legend_y = height - 12
for server_index, server in enumerate(servers):
    x = left + server_index * 150
    role = "primary" if server == primary else "replica"
    parts.append(f'<rect x="{x}" y="{legend_y - 10}" width="12" height="12" fill="{colors[server_index % 3]}"/>')
    parts.append(f'<text x="{x + 16}" y="{legend_y}">{server} ({role})</text>')
parts.append("</svg>")
open(svg_path, "w").write("\n".join(parts))
print(f"\n![Cores busy per PostgreSQL server]({svg_path.rsplit('/', 1)[1][:-4]}.png)")
PY

"$BIN/agora-bench" render --title "Replication: reads on 0, 1 and 2 replicas, and what a synchronous quorum costs a write" \
  --from "$WORK/ceiling.json" --from "$WORK/reads-0.json" --from "$WORK/reads-1.json" --from "$WORK/reads-2.json" \
  --from "$WORK/writes-sync-1.json" --from "$WORK/writes-async-1.json" \
  --from "$WORK/writes-sync-2.json" --from "$WORK/writes-async-2.json" \
  --preamble "$ROOT/scripts/bench/replication-intro.md" \
  --appendix "Reads per server and CPU per PostgreSQL server=@$WORK/tables.md" \
  --note "Data: the $users seeded users (\`agora seed users --users 1000000\`, seed 42) in database $DB on the replicated formation" \
  --note "Reads: 4000 profile reads and name-prefix searches of real users (\`agora scenario smoke\`), cycled; writes: 50 users with a session each creating posts" \
  --note "Formation: pg_auto_failover, primary $primary_name, replicas $replica_names (streaming, one replication slot each), durable (fsync, synchronous_commit on); $(cat "$WORK/mode-sync.txt")" \
  --note "Server: one \`agora serve\`, release build, default settings (replica checks every 1 s), on $LISTEN" \
  --note "Every server, the monitor, agora, Redis and the load tool share this machine's $(nproc) cores" \
  --out "$OUT" --stem "$STEM" >/dev/null

render_pngs
note "report: $OUT/$STEM.md"
