#!/usr/bin/env bash
# The shop study (docs/benchmarks/shop.md), reproduced with one command: `./dev bench shop`,
# which starts the dev stack (sessions live in its main database) and builds release binaries,
# then runs this. It brings up the shop's parts (`./dev shop up dev`) and starts the shop
# instances itself, so that one run can measure, one after another, the same shopaholic load
# through a growing chain of parts:
#
#   direct     1 instance → shop-pg1 (no pgpool, shop-pg2 stopped), no nginx  [the ceiling]
#   pgpool     1 instance → pgpool1 → shop-pg1 only (shop-pg2 stopped)
#   2 pg       1 instance → pgpool1 → both backends (every write runs twice)
#   2 pgpool   1 instance → both pgpools → both backends
#   nginx      nginx1 → 1 instance → both pgpools → both backends
#   2 app      nginx1 → 2 instances → …
#   2 nginx    both nginx → 2 instances → …                      (carts in PostgreSQL so far)
#   redis      the same, carts in Redis (primary + replica, Sentinel)
#   streaming  the same, pgpool in streaming-replication mode (reads balanced to the standby)
#
# with the CPU each kind of process spent (read from /proc), and renders the bar charts with
# `agora-bench shop-report`. The shop's parts are left as they were found (native mode, up).
#
# The ladder runs BENCH_ROUNDS times (each configuration on a clean shop and a fresh Redis
# namespace); the charts and the CPU table show the last round (the first also warms caches and
# the page cache of a fresh machine), and a table puts every round's requests/s side by side, so
# the reader sees how much of a difference is the machine's noise. The shop instances' and the
# load's logs, and every round's results and CPU samples, are kept in .stack/dev/logs/bench-shop/.
#
# Env: AGORA_BIN_DIR, AGORA_PG_BIN, AGORA_PG_PORT, AGORA_REDIS_PORT (set by ./dev bench);
#      BENCH_CLIENTS (32), BENCH_WARMUP (3), BENCH_DURATION (20), BENCH_ROUNDS (2),
#      BENCH_OUT (docs/benchmarks).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=common.sh
. "$ROOT/scripts/bench/common.sh"
CLIENTS=${BENCH_CLIENTS:-32}
WARMUP=${BENCH_WARMUP:-3}
DURATION=${BENCH_DURATION:-20}
ROUNDS=${BENCH_ROUNDS:-2}
OUT=${BENCH_OUT:-$ROOT/docs/benchmarks}
STEM=shop
SHOPPERS=200
PRODUCTS=300
export AGORA_REDIS_URL="redis://127.0.0.1:${AGORA_REDIS_PORT:?run through ./dev bench}"
export AGORA_LOG=warn AGORA_OPS_LISTEN=api AGORA_SERVICES=shop
WORK="$(mktemp -d)"
LOGS="$ROOT/.stack/dev/logs/bench-shop"
INSTANCE_PIDS=()
STARTED_SHOP=0

dev() { "$ROOT/dev" "$@"; }

stop_instances() {
  local pid
  for pid in "${INSTANCE_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${INSTANCE_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  INSTANCE_PIDS=()
}
cleanup() {
  stop_instances
  if [[ $(cat "$WORK/mode" 2>/dev/null) == streaming ]]; then
    note "putting the shop back in native mode"
    { dev shop down dev && dev shop up dev --pgpool native; } >>"$WORK/shop.log" 2>&1 || true
  fi
  if ((STARTED_SHOP)); then dev shop down dev >/dev/null 2>&1 || true; fi
  sql -c "DELETE FROM sessions WHERE user_id IN (SELECT id FROM users ORDER BY id LIMIT $SHOPPERS)" >/dev/null 2>&1 || true
  rm -rf "$LOGS"
  mkdir -p "$LOGS"
  cp "$WORK"/*.log "$WORK"/*.json* "$LOGS/" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The shop's parts in the given pgpool mode, and their addresses.
shop_up() { # mode
  local status
  status=$(dev shop status dev 2>/dev/null || true)
  if ! grep -q "pgpool1 .*running" <<<"$status"; then STARTED_SHOP=1; fi
  if grep -q "pgpool mode $1" <<<"$status" || ! grep -q "running" <<<"$status"; then
    dev shop up dev --pgpool "$1" >>"$WORK/shop.log" 2>&1 || { tail -n 30 "$WORK/shop.log" >&2; die "./dev shop up dev --pgpool $1 failed"; }
  else
    note "switching the shop to pgpool mode $1 (./dev shop down, up --pgpool $1)"
    { dev shop down dev && dev shop up dev --pgpool "$1"; } >>"$WORK/shop.log" 2>&1 || { tail -n 30 "$WORK/shop.log" >&2; die "switching to --pgpool $1 failed"; }
  fi
  echo "$1" >"$WORK/mode"
  eval "$(dev shop env dev)"
  IFS=, read -ra NGINX_URLS <<<"$AGORA_SHOP_NGINX_URLS"
  IFS=, read -ra INSTANCE_ADDRS <<<"$AGORA_SHOP_INSTANCE_ADDRS"
  IFS=, read -ra PGPOOLS <<<"${AGORA_SHOP_DATABASE_URL#*@}"
  PGPOOLS[-1]=${PGPOOLS[-1]%%/*}
  BACKEND_PORTS=()
  local port
  while read -r port; do BACKEND_PORTS+=("$port"); done < <(sed -n 's/.*shop-pg[12] *running.*127\.0\.0\.1:\([0-9]*\).*/\1/p' <<<"$(dev shop status dev)")
  ((${#BACKEND_PORTS[@]} == 2)) || die "expected two running shop backends"
}

shop_url() { # host:port,...
  echo "postgres://agora:agora@$1/shop?load_balance_hosts=random&target_session_attrs=read-write&connect_timeout=2"
}

start_instances() { # count carts database-url
  local n address
  for ((n = 1; n <= $1; n++)); do
    address=${INSTANCE_ADDRS[$((n - 1))]}
    AGORA_LISTEN=$address AGORA_SHOP_CARTS=$2 AGORA_SHOP_DATABASE_URL=$3 AGORA_SHOP_NODE=$n \
      "$BIN/agora" serve >>"$WORK/instance$n.log" 2>&1 &
    INSTANCE_PIDS+=($!)
  done
  for ((n = 1; n <= $1; n++)); do
    address=${INSTANCE_ADDRS[$((n - 1))]}
    local i
    for ((i = 0; i < 100; i++)); do
      [[ "$(curl -s -o /dev/null -w '%{http_code}' "http://$address/health")" == 200 ]] && break
      kill -0 "${INSTANCE_PIDS[$((n - 1))]}" 2>/dev/null || { tail -n 20 "$WORK/instance$n.log" >&2; die "shop instance $n exited"; }
      sleep 0.1
    done
    ((i < 100)) || die "shop instance $n did not answer on $address"
  done
}

# CPU ticks of processes and their live children; a process's counters include the children it
# has reaped already (PostgreSQL and pgpool reap theirs).
ticks_with_children() { # pid...
  local total=0 pid child
  for pid in "$@"; do
    total=$((total + $(cpu_ticks_of "$pid")))
    for child in $(pgrep -P "$pid" || true); do total=$((total + $(cpu_ticks_of "$child"))); done
  done
  echo "$total"
}
cpu_sample() { # file load-pid
  local shop_dir="$ROOT/.stack/dev/shop" postmasters=() n pid
  for n in 1 2; do
    pid=$(head -n1 "$ROOT/.stack/dev/shop-pg$n/data/postmaster.pid" 2>/dev/null || true)
    [[ $pid =~ ^[0-9]+$ ]] && postmasters+=("$pid")
  done
  # shellcheck disable=SC2046 # pid lists
  {
    echo "at $(date +%s%N)"
    echo "app $(ticks_with_children "${INSTANCE_PIDS[@]}")"
    echo "pgpool $(ticks_with_children $(cat "$shop_dir"/pgpool[12].pid 2>/dev/null))"
    echo "postgres $(ticks_with_children "${postmasters[@]}")"
    echo "nginx $(ticks_with_children $(cat "$shop_dir"/nginx[12].pid 2>/dev/null))"
    echo "redis $(ticks_with_children $(cat "$shop_dir"/redis[12].pid 2>/dev/null))"
    echo "load $(ticks_with_children "$2")"
  } >"$1"
}

clean_shop() { # through pgpool, so that both backends are cleaned; retried while it settles a failover
  local try
  for ((try = 1; ; try++)); do
    PGPASSWORD=agora "$PSQL" -X -q -At -h 127.0.0.1 -p "${PGPOOLS[0]##*:}" -U agora -d shop -v ON_ERROR_STOP=1 \
      -c "TRUNCATE order_lines, orders, cart_lines, idempotency_keys, products, customers" >/dev/null 2>>"$WORK/shop.log" && return
    ((try < 30)) || die "could not empty the shop through pgpool (see $LOGS/shop.log)"
    sleep 1
  done
}

RESULTS=() # the last round: the charts and the CPU table
EARLIER=() # the other rounds
ROUND=1
measure() { # label instances carts database-url targets
  local label=$1 file
  file="$WORK/$(tr -c 'a-z0-9\n' '-' <<<"$label")-round$ROUND.json"
  note "round $ROUND/$ROUNDS, $label: $2 instance(s), carts in $3, $CLIENTS shoppers for ${DURATION}s via $5"
  # Every configuration starts from an empty shop and carts no earlier one left behind.
  clean_shop
  export AGORA_NAMESPACE="benchshop$$-$ROUND-${#RESULTS[@]}-${#EARLIER[@]}-"
  start_instances "$2" "$3" "$4"
  "$BIN/agora-bench" shopaholic --targets "$5" --users "$WORK/shoppers.txt" --clients "$CLIENTS" \
    --warmup-secs "$WARMUP" --duration-secs "$DURATION" --products "$PRODUCTS" --label "$label" \
    --out "$file" >"$WORK/load.log" 2>&1 &
  local load=$!
  # The CPU window opens after the warm-up and closes at the last sample taken while the load
  # still ran (a process that has exited has no counters left to read): one every second, kept
  # only if the load was alive after it. The table turns the window into a rate.
  sleep "$WARMUP"
  cpu_sample "$file.cpu0" "$load"
  while sleep 1 && kill -0 "$load" 2>/dev/null; do
    cpu_sample "$file.sample" "$load"
    if kill -0 "$load" 2>/dev/null; then mv "$file.sample" "$file.cpu1"; fi
  done
  rm -f "$file.sample"
  [[ -e $file.cpu1 ]] || cpu_sample "$file.cpu1" "$load"
  wait "$load" || { cat "$WORK/load.log" >&2; die "shopaholic failed in $label"; }
  tail -n 1 "$WORK/load.log"
  { echo "== round $ROUND, $label"; cat "$WORK/load.log"; } >>"$WORK/load-all.log"
  stop_instances
  if ((ROUND == ROUNDS)); then RESULTS+=("$file"); else EARLIER+=("$file"); fi
}

# The native ladder, from one backend without pgpool up to two nginx with carts in Redis.
native_ladder() {
  local pool1=${PGPOOLS[0]} both_pools one_app=http://${INSTANCE_ADDRS[0]}
  both_pools=$(IFS=,; echo "${PGPOOLS[*]}")
  note "stopping shop-pg2 (pgpool detaches it): one backend"
  dev shop kill pg2 dev >>"$WORK/shop.log" 2>&1
  sleep 3
  measure "direct" 1 postgres "$(shop_url "127.0.0.1:${BACKEND_PORTS[0]}")" "$one_app"
  measure "pgpool" 1 postgres "$(shop_url "$pool1")" "$one_app"
  note "bringing shop-pg2 back (online recovery): two backends"
  dev shop start pg2 dev >>"$WORK/shop.log" 2>&1 || { tail -n 20 "$WORK/shop.log" >&2; die "recovering shop-pg2 failed"; }
  measure "2 pg" 1 postgres "$(shop_url "$pool1")" "$one_app"
  measure "2 pgpool" 1 postgres "$(shop_url "$both_pools")" "$one_app"
  measure "nginx" 1 postgres "$(shop_url "$both_pools")" "${NGINX_URLS[0]}"
  measure "2 app" 2 postgres "$(shop_url "$both_pools")" "${NGINX_URLS[0]}"
  measure "2 nginx" 2 postgres "$(shop_url "$both_pools")" "$AGORA_SHOP_NGINX_URLS"
  measure "redis" 2 redis "$(shop_url "$both_pools")" "$AGORA_SHOP_NGINX_URLS"
}

main() {
  ensure_bench_data
  shop_up native
  "$BIN/agora" migrate --shop >/dev/null
  "$BIN/agora" scenario shop --users "$SHOPPERS" --out "$WORK/shoppers.txt" >/dev/null

  for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do native_ladder; done
  shop_up streaming
  local both_pools
  both_pools=$(IFS=,; echo "${PGPOOLS[*]}")
  for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
    measure "streaming" 2 redis "$(shop_url "$both_pools")" "$AGORA_SHOP_NGINX_URLS"
  done
  shop_up native

  mkdir -p "$OUT"
  local args=() file
  for file in "${RESULTS[@]}"; do args+=(--from "$file"); done
  "$BIN/agora-bench" shop-report "${args[@]}" --out "$OUT" --stem "$STEM" --markdown "$WORK/results.md"
  shop_cpu_table >"$WORK/cpu.md"
  rounds_table >"$WORK/rounds.md"
  {
    echo "# The shop under a shopaholic load"
    echo
    cat "$ROOT/scripts/bench/shop-intro.md"
    echo
    cat "$WORK/results.md"
    echo
    cat "$WORK/cpu.md"
    echo
    cat "$WORK/rounds.md"
    echo
    echo "Run: $(date -u +%Y-%m-%d), $(nproc) cores, $CLIENTS shoppers, ${WARMUP} s warm-up and ${DURATION} s measured per configuration, one configuration after another in one run, the ladder $ROUNDS times (\`./dev bench shop\`)."
  } >"$OUT/$STEM.md"
  render_pngs
  note "wrote $OUT/$STEM.md"
}

# Cores each kind of process kept busy per configuration, and CPU seconds per 1,000 requests.
shop_cpu_table() {
  python3 - "$(nproc)" "${RESULTS[@]}" <<'PY'
import json, sys
ticks = 100.0  # USER_HZ
cores = int(sys.argv[1])
kinds = ["app", "pgpool", "postgres", "nginx", "redis", "load"]
def sample(path):
    return {line.split()[0]: int(line.split()[1]) for line in open(path)}
print("### Where the CPU went\n")
print("Cores each kind of process kept busy in the measured window (read from /proc) and, in")
print("brackets, the CPU seconds it spent per 1,000 requests. All of it comes out of the same")
print("%d cores: a total near %d means the machine, not the design, set the pace. \"–\": the" % (cores, cores))
print("load tool was not sampled in that window (left out of the total).\n")
print("| configuration | requests/s | " + " | ".join(kinds) + " | total cores | CPU s / 1,000 requests |")
print("|---|---:|" + "---:|" * len(kinds) + "---:|---:|")
for path in sys.argv[2:]:
    report = json.load(open(path))
    before, after = sample(path + ".cpu0"), sample(path + ".cpu1")
    elapsed = (after["at"] - before["at"]) / 1e9
    requests = sum(kind["count"] for kind in report["kinds"].values())
    rps = requests / report["duration_secs"]
    # The load tool's counters read 0 when a sample missed its process (an earlier sampler
    # looked it up by name): shown as not sampled, and left out of the total.
    missed = {k for k in ["load"] if before.get(k, 0) == 0 or after.get(k, 0) == 0}
    busy = {k: max(0, after.get(k, 0) - before.get(k, 0)) / ticks / elapsed for k in kinds if k not in missed}
    cells = " | ".join(
        "–" if k in missed else f"{busy[k]:.2f} ({1000 * busy[k] / max(rps, 1e-9):.2f})" for k in kinds
    )
    total = sum(busy.values())
    print(f"| {report['label']} | {rps:,.0f} | {cells} | {total:.2f} | {1000 * total / max(rps, 1e-9):.2f} |")
PY
}

# Every round's requests/s side by side: their spread is the machine's noise.
rounds_table() {
  python3 - "$ROUNDS" "${EARLIER[@]}" -- "${RESULTS[@]}" <<'PY'
import json, sys
rounds = int(sys.argv[1])
split = sys.argv.index("--")
first, later = sys.argv[2:split], sys.argv[split + 1:]
def rate(path):
    report = json.load(open(path))
    requests = sum(kind["count"] for kind in report["kinds"].values())
    return report["label"], requests / report["duration_secs"]
by_label, order = {}, []
for path in first + later:
    label, rps = rate(path)
    if label not in by_label:
        order.append(label)
    by_label.setdefault(label, []).append(rps)
print("### Round to round\n")
print("The same ladder measured %d times in this run; the charts and the tables above show the last round.\n" % rounds)
print("| configuration | " + " | ".join(f"round {n} requests/s" for n in range(1, rounds + 1)) + " | spread |")
print("|---|" + "---:|" * rounds + "---:|")
for label in order:
    values = by_label[label]
    spread = (max(values) - min(values)) / max(max(values), 1e-9)
    cells = " | ".join(f"{v:,.0f}" for v in values)
    print(f"| {label} | {cells} | {100 * spread:.0f} % |")
PY
}

main "$@"
