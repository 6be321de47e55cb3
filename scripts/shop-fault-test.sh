#!/usr/bin/env bash
# Shop fault test (docs/shop.md): under shopaholic load through both nginx, kill one pgpool-II,
# one PostgreSQL backend, one shop instance, one nginx and the Redis primary, each in turn, and
# bring each back. Then:
#   - every order the shop acknowledged is on both backends (lost = 0), which agree;
#   - no stock is below zero;
#   - the only 5xx the shoppers saw are 503 (with Retry-After, by construction: the platform's
#     and nginx's only 503s carry it);
#   - a fresh load runs with every kind of request answered and under 2 % errors:
#     everything recovered without a restart.
#
# Part of `./dev test`. Needs the test stack (./dev stack up test); brings up the shop's parts
# (./dev shop up test) and stops them again unless they ran before or AGORA_KEEP_STACK=1.
# Env: AGORA_BIN, AGORA_BENCH_BIN (debug builds by default), AGORA_TEST_DATABASE_URL.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DB_NAME=agora_shopfault
SHOPPERS=20
LOAD_SECS=44

note() { printf 'shop-faults: %s\n' "$*"; }
die() { printf 'shop-faults: error: %s\n' "$*" >&2; exit 1; }
# shellcheck source=scripts/test-lib.sh
. "$ROOT/scripts/test-lib.sh"

WORK="$(target_dir)/shop-fault-test"
rm -rf "$WORK"
mkdir -p "$WORK"
INSTANCE_PIDS=()
STARTED_SHOP=0
LOAD_PID=""

stop_instances() {
  local pid
  for pid in "${INSTANCE_PIDS[@]}"; do
    if [[ -n $pid ]]; then kill -TERM "$pid" 2>/dev/null || true; fi
  done
  for pid in "${INSTANCE_PIDS[@]}"; do
    if [[ -n $pid ]]; then wait "$pid" 2>/dev/null || true; fi
  done
}
cleanup() {
  if [[ -n $LOAD_PID ]]; then kill "$LOAD_PID" 2>/dev/null || true; fi
  stop_instances
  if ((STARTED_SHOP)) && [[ ${AGORA_KEEP_STACK:-0} != 1 ]]; then
    "$ROOT/dev" shop down test >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

shop_sql() { # port sql — straight to one backend (or one pgpool), bypassing the others
  PGPASSWORD=agora "$(psql_bin)" -X -q -At -h 127.0.0.1 -p "$1" -U agora -d shop -v ON_ERROR_STOP=1 -c "$2"
}

# The shop instance number $1 (1-based), on its port from ./dev shop env.
start_instance() {
  local n=$1 address
  address=${INSTANCE_ADDRS[$((n - 1))]}
  AGORA_LISTEN=$address AGORA_OPS_LISTEN=api AGORA_SERVICES=shop AGORA_SHOP_CARTS=redis \
    AGORA_SHOP_NODE=$n AGORA_LOG=warn "$BIN" serve >>"$WORK/instance$n.log" 2>&1 &
  INSTANCE_PIDS[n - 1]=$!
  local i
  for ((i = 0; i < 100; i++)); do
    [[ "$(curl -s -o /dev/null -w '%{http_code}' "http://$address/health")" == 200 ]] && return 0
    kill -0 "${INSTANCE_PIDS[n - 1]}" 2>/dev/null || { tail -n 20 "$WORK/instance$n.log" >&2; die "instance $n exited"; }
    sleep 0.1
  done
  die "instance $n did not answer /health on $address"
}

fault() { # seconds-into-the-load action target
  local at=$1 action=$2 target=$3 now
  now=$(($(date +%s) - LOAD_STARTED))
  ((at > now)) && sleep $((at - now))
  case $target in
    app1)
      if [[ $action == kill ]]; then
        kill -KILL "${INSTANCE_PIDS[0]}" 2>/dev/null || true
        wait "${INSTANCE_PIDS[0]}" 2>/dev/null || true
        INSTANCE_PIDS[0]=""
      else
        start_instance 1
      fi
      ;;
    *) "$ROOT/dev" shop "$action" "$target" test >>"$WORK/faults.log" 2>&1 || {
      cat "$WORK/faults.log" >&2
      die "./dev shop $action $target failed"
    } ;;
  esac
  note "t=$(($(date +%s) - LOAD_STARTED))s: $action $target"
}

main() {
  BIN="${AGORA_BIN:-$(target_dir)/debug/agora}"
  BENCH="${AGORA_BENCH_BIN:-$(target_dir)/debug/agora-bench}"
  [[ -x $BIN && -x $BENCH ]] || die "no agora / agora-bench binaries (cargo build -p agora -p agora-bench)"
  if [[ -z ${AGORA_TEST_DATABASE_URL:-} ]]; then
    eval "$("$ROOT/dev" env test)"
  fi
  # Captured first: grep -q leaving early would fail the pipe (SIGPIPE under pipefail).
  local shop_status
  shop_status=$("$ROOT/dev" shop status test 2>/dev/null || true)
  if ! grep -q "pgpool1 .*running" <<<"$shop_status"; then
    note "bringing up the shop's parts (./dev shop up test)"
    "$ROOT/dev" shop up test >"$WORK/shop-up.log" 2>&1 || { cat "$WORK/shop-up.log" >&2; die "./dev shop up test failed"; }
    STARTED_SHOP=1
  fi
  eval "$("$ROOT/dev" shop env test)"
  IFS=, read -ra INSTANCE_ADDRS <<<"$AGORA_SHOP_INSTANCE_ADDRS"
  IFS=, read -ra PGPOOLS <<<"${AGORA_SHOP_DATABASE_URL#*@}"
  local pgpool1_port=${PGPOOLS[0]##*:} backends
  backends=$(sed -n 's/.*shop-pg[12] *running.*127\.0\.0\.1:\([0-9]*\).*/\1/p' <("$ROOT/dev" shop status test) | tr '\n' ' ')
  read -ra BACKEND_PORTS <<<"$backends"
  ((${#BACKEND_PORTS[@]} == 2)) || die "expected two running backends, got '${backends}'"

  # Sessions live in the main database: a fresh one with shoppers.
  fresh_database "$AGORA_TEST_DATABASE_URL" agora
  export AGORA_DATABASE_URL="${AGORA_TEST_DATABASE_URL%/*}/$DB_NAME"
  "$BIN" migrate --shop >"$WORK/migrate.log" 2>&1 || { cat "$WORK/migrate.log" >&2; die "agora migrate --shop failed"; }
  PGPASSWORD=agora "$(psql_bin)" -X -q "$AGORA_DATABASE_URL" -v ON_ERROR_STOP=1 -c \
    "INSERT INTO users (first_name, second_name, password_hash) SELECT 'Shopper', 'N' || g, 'unused' FROM generate_series(1, $SHOPPERS) g" >/dev/null
  "$BIN" scenario shop --users "$SHOPPERS" --out "$WORK/shoppers.txt" >/dev/null
  # A clean shop (through one pgpool: both backends).
  shop_sql "$pgpool1_port" "TRUNCATE order_lines, orders, cart_lines, idempotency_keys, products, customers" >/dev/null

  start_instance 1
  start_instance 2
  note "shopaholic load: $SHOPPERS shoppers for ${LOAD_SECS}s over $AGORA_SHOP_NGINX_URLS"
  "$BENCH" shopaholic --targets "$AGORA_SHOP_NGINX_URLS" --users "$WORK/shoppers.txt" \
    --clients "$SHOPPERS" --warmup-secs 1 --duration-secs "$LOAD_SECS" --products 200 \
    --label faults --orders-log "$WORK/orders.txt" --out "$WORK/faults.json" >"$WORK/load.log" 2>&1 &
  LOAD_PID=$!
  LOAD_STARTED=$(date +%s)
  fault 4 kill pgpool1
  fault 8 start pgpool1
  fault 11 kill pg2
  fault 15 start pg2
  fault 20 kill app1
  fault 23 start app1
  fault 26 kill nginx1
  fault 29 start nginx1
  fault 32 kill redis-primary
  fault 40 start redis
  wait "$LOAD_PID" || { cat "$WORK/load.log" >&2; die "the load tool failed"; }
  LOAD_PID=""

  # Every acknowledged order, on both backends.
  local acknowledged ids port found failed=0
  acknowledged=$(grep -c . "$WORK/orders.txt" || true)
  ids="{$(paste -sd, "$WORK/orders.txt")}"
  for port in "${BACKEND_PORTS[@]}"; do
    found=$(shop_sql "$port" "SELECT count(*) FROM orders WHERE id = ANY('$ids'::bigint[])")
    note "backend :$port has $found of the $acknowledged acknowledged orders (lost $((acknowledged - found)))"
    ((found == acknowledged)) || failed=1
    [[ $(shop_sql "$port" "SELECT count(*) FROM products WHERE stock < 0") == 0 ]] || { note "negative stock on :$port"; failed=1; }
  done
  local digest1 digest2
  digest1=$(shop_sql "${BACKEND_PORTS[0]}" "SELECT count(*), coalesce(sum(stock), 0) FROM products")$(shop_sql "${BACKEND_PORTS[0]}" "SELECT count(*), coalesce(sum(total_minor), 0), count(*) FILTER (WHERE state = 'cancelled') FROM orders")
  digest2=$(shop_sql "${BACKEND_PORTS[1]}" "SELECT count(*), coalesce(sum(stock), 0) FROM products")$(shop_sql "${BACKEND_PORTS[1]}" "SELECT count(*), coalesce(sum(total_minor), 0), count(*) FILTER (WHERE state = 'cancelled') FROM orders")
  [[ $digest1 == "$digest2" ]] || { note "the backends differ: $digest1 vs $digest2"; failed=1; }

  # What the shoppers saw.
  python3 - "$WORK/faults.json" <<'PY' || failed=1
import json, sys
report = json.load(open(sys.argv[1]))
total = sum(kind["count"] for kind in report["kinds"].values())
errors = report["error_statuses"]
print(f"shop-faults: {total} requests, errors by status {errors}, {report['failovers']} requests moved to the other nginx")
bad = {status: n for status, n in errors.items() if status.startswith("5") and status != "503"}
if bad:
    print(f"shop-faults: 5xx other than 503: {bad}")
    sys.exit(1)
PY

  # Recovered without a restart: a fresh load, no error at all.
  "$BENCH" shopaholic --targets "$AGORA_SHOP_NGINX_URLS" --users "$WORK/shoppers.txt" \
    --clients 8 --warmup-secs 1 --duration-secs 4 --products 200 --label after \
    --out "$WORK/after.json" >"$WORK/after.log" 2>&1 || { cat "$WORK/after.log" >&2; die "the load after the faults failed"; }
  python3 - "$WORK/after.json" <<'PY' || failed=1
import json, sys
report = json.load(open(sys.argv[1]))
total = sum(kind["count"] for kind in report["kinds"].values())
errors = sum(report["error_statuses"].values())
unanswered = [name for name, kind in report["kinds"].items() if kind["count"] - kind["errors"] == 0]
print(f"shop-faults: after the faults: {total} requests, errors {report['error_statuses'] or 'none'}")
if errors > 0.02 * total or unanswered or set(report["error_statuses"]) - {"503"}:
    print(f"shop-faults: not recovered: {errors} errors, kinds never answered: {unanswered}")
    sys.exit(1)
PY
  if ((failed)); then
    note "FAILED; the instances' logs, the load's results and the fault log are in $WORK"
    exit 1
  fi
  note "PASSED: lost = 0 of $acknowledged acknowledged orders"
}

main "$@"
