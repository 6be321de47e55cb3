#!/usr/bin/env bash
# Monitoring test: every Grafana panel and every alert rule is evaluated against a real
# Prometheus scraping a real agora, so dashboards and alerts cannot drift from the metrics
# (docs/monitoring.md). Grafana is not installable here; its only part that matters for this,
# the PromQL, is what gets checked.
#
# Brings up monitoring for the test profile (`./dev monitoring up test`; stopped again at the
# end unless it was running before or AGORA_KEEP_STACK=1), starts `agora serve` on a fresh
# database, registers it as a scrape target, makes some traffic, then queries Prometheus: a
# panel query that errors or returns no series fails the test, as does an alert rule that
# does not evaluate or whose measured side (the expression left of its comparison) is empty.
#
# Needs the test stack (./dev stack up test); `./dev test` runs this for you.
# Env: AGORA_BIN (default $CARGO_TARGET_DIR/debug/agora), AGORA_TEST_DATABASE_URL and
#      AGORA_TEST_SHARD_URLS (admin URLs of the test servers), AGORA_TEST_REPLICATED_URL and
#      AGORA_TEST_REPLICA_URLS (the replicated formation: when they are set and the binary knows
#      AGORA_DATABASE_REPLICAS, agora reads from the replicas and the replica panels must have
#      data; otherwise those are only checked to evaluate).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The test profile's Prometheus and the database its exporters watch (scripts/dev/monitoring.sh).
PROM=http://127.0.0.1:62090
DB_NAME=agora_monitoring
TARGET=monitoring-test
PASSWORD=monitoring-pass-1
TRAFFIC_SECS=10

note() { printf 'monitoring: %s\n' "$*"; }
die() { printf 'monitoring: error: %s\n' "$*" >&2; exit 1; }
# shellcheck source=scripts/test-lib.sh
. "$ROOT/scripts/test-lib.sh"

# The same server URL, another database: .../postgres?params -> .../agora_monitoring?params.
with_database() { # url
  local url=$1 query=""
  [[ $url == *\?* ]] && query="?${url#*\?}" url=${url%%\?*}
  printf '%s/%s%s\n' "${url%/*}" "$DB_NAME" "$query"
}

json_field() { # field  (reads JSON on stdin)
  python3 -c 'import json, sys; v = json.load(sys.stdin); print(v[sys.argv[1]] if sys.argv[1] else v)' "$1"
}

# One request; prints "STATUS BODY".
call() { # method path [json-body] [token]
  local args=(-s -o "$OUT/body" -w '%{http_code}' -X "$1" "$BASE$2" --max-time 10)
  [[ -n ${3:-} ]] && args+=(-H 'content-type: application/json' --data-binary "$3")
  [[ -n ${4:-} ]] && args+=(-H "authorization: Bearer $4")
  local status
  status="$(curl "${args[@]}")" || status=000
  printf '%s %s\n' "$status" "$(cat "$OUT/body" 2>/dev/null)"
}

# A request whose status must be the expected one: traffic that fails would make the panels
# show errors, not prove them right.
expect() { # status method path [json-body] [token]
  local want=$1 reply
  shift
  reply="$(call "$@")"
  [[ $reply == "$want "* ]] || die "$1 $2: expected $want, got: ${reply:0:300} (log: $SERVER_LOG)"
  printf '%s\n' "${reply#* }"
}

SERVER_PID="" STARTED_MONITORING=0
cleanup() {
  stop_server
  "$ROOT/dev" monitoring remove-target "$TARGET" test || true
  if ((STARTED_MONITORING)) && [[ ${AGORA_KEEP_STACK:-0} != 1 ]]; then
    "$ROOT/dev" monitoring down test >/dev/null || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

prom_value() { # promql -> the first sample's value, or nothing
  python3 - "$PROM" "$1" <<'PY'
import json, sys, urllib.parse, urllib.request
url = sys.argv[1] + "/api/v1/query?" + urllib.parse.urlencode({"query": sys.argv[2]})
try:
    with urllib.request.urlopen(url, timeout=5) as r:
        result = json.load(r)["data"]["result"]
    if result:
        print(result[0]["value"][1])
except Exception:
    pass
PY
}

scraped_after() { # unix-time: agora's target has been scraped since then
  local last
  last="$(prom_value "timestamp(up{job=\"agora\",name=\"$TARGET\"} == 1)")"
  [[ -n $last ]] && python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) > float(sys.argv[2]) else 1)' "$last" "$1"
}

wait_for() { # seconds what command...
  local secs=$1 what=$2 i
  shift 2
  for ((i = 0; i < secs * 4; i++)); do
    "$@" && return 0
    sleep 0.25
  done
  die "$what within ${secs}s"
}

start_server() {
  AGORA_DATABASE_URL="$DB_URL" "$BIN" migrate >>"$SERVER_LOG" 2>&1 || {
    tail -n 20 "$SERVER_LOG" >&2
    die "agora migrate failed (log: $SERVER_LOG)"
  }
  AGORA_DATABASE_URL="$DB_URL" AGORA_LISTEN="127.0.0.1:$PORT" AGORA_OPS_LISTEN="127.0.0.1:$OPS_PORT" \
    AGORA_NAMESPACE="$TARGET" AGORA_AMQP_QUEUE_EXPIRES_SECS=60 AGORA_LOG=warn \
    "$BIN" serve >>"$SERVER_LOG" 2>&1 &
  SERVER_PID=$!
  local i
  for ((i = 0; i < 60; i++)); do
    kill -0 "$SERVER_PID" 2>/dev/null || {
      tail -n 20 "$SERVER_LOG" >&2
      die "agora serve exited during startup (log: $SERVER_LOG)"
    }
    [[ "$(call GET /health)" == "200 "* ]] && return 0
    sleep 0.5
  done
  die "GET $BASE/health did not return 200 within 30 s (log: $SERVER_LOG)"
}

# Something for every panel to show: reads and writes on each service, a 404 and a refused
# login for the error panels, authenticated requests for the session cache, a feed read.
traffic() {
  local a b ta tb post i=0 t0=$SECONDS
  a="$(expect 200 POST /user/register "{\"first_name\":\"Monitoring\",\"second_name\":\"Test\",\"password\":\"$PASSWORD\"}" | json_field user_id)"
  b="$(expect 200 POST /user/register "{\"first_name\":\"Monitoring\",\"second_name\":\"Reader\",\"password\":\"$PASSWORD\"}" | json_field user_id)"
  ta="$(expect 200 POST /login "{\"id\":\"$a\",\"password\":\"$PASSWORD\"}" | json_field token)"
  tb="$(expect 200 POST /login "{\"id\":\"$b\",\"password\":\"$PASSWORD\"}" | json_field token)"
  expect 400 POST /login "{\"id\":\"$a\",\"password\":\"wrong-password\"}" >/dev/null
  expect 200 PUT "/friend/set/$a" "" "$tb" >/dev/null
  while ((SECONDS - t0 < TRAFFIC_SECS || i < 5)); do
    i=$((i + 1))
    post="$(expect 200 POST /post/create "{\"text\":\"monitoring post $i\"}" "$ta" | json_field '')"
    expect 200 GET "/post/get/$post" "" "$tb" >/dev/null
    expect 200 GET "/post/feed?offset=0&limit=10" "" "$tb" >/dev/null
    expect 200 GET "/user/get/$a" >/dev/null
    expect 200 GET "/user/search?first_name=Monit&last_name=Tes" >/dev/null
    expect 200 POST "/dialog/$b/send" "{\"text\":\"hello $i\"}" "$ta" >/dev/null
    expect 200 GET "/dialog/$a/list" "" "$tb" >/dev/null
    expect 200 GET /dialogs/unread "" "$tb" >/dev/null
    expect 404 GET /user/get/1 >/dev/null
    sleep 0.3
  done
  note "traffic: $i rounds of 9 requests in $((SECONDS - t0))s"
}

main() {
  BIN="${AGORA_BIN:-$(target_dir)/debug/agora}"
  OUT="$(target_dir)/monitoring-test"
  SERVER_LOG="$OUT/server.log"
  [[ -x $BIN ]] || die "no agora binary at $BIN (cargo build -p agora, or set AGORA_BIN)"
  command -v curl >/dev/null || die "curl not found"
  command -v python3 >/dev/null || die "python3 not found"
  if [[ -z ${AGORA_TEST_DATABASE_URL:-} ]]; then
    eval "$("$ROOT/dev" env test)"
  fi
  mkdir -p "$OUT"
  : >"$SERVER_LOG"
  local t0=$SECONDS

  # The database first: `monitoring up` points the exporters at it.
  fresh_database "$AGORA_TEST_DATABASE_URL" agora
  DB_URL="$(with_database "$AGORA_TEST_DATABASE_URL")"
  local shard_admin i=0
  export AGORA_DIALOG_SHARDS=""
  IFS=, read -ra shard_admins <<<"${AGORA_TEST_SHARD_URLS:?}"
  for shard_admin in "${shard_admins[@]:0:2}"; do
    i=$((i + 1))
    fresh_database "$shard_admin" agora
    AGORA_DIALOG_SHARDS+="${AGORA_DIALOG_SHARDS:+,}shard$i=$(with_database "$shard_admin")"
  done
  # Replicas: the platform database moves to the formation, read through its nodes.
  REPLICAS=0
  unset AGORA_DATABASE_REPLICAS
  if [[ -n ${AGORA_TEST_REPLICATED_URL:-} && -n ${AGORA_TEST_REPLICA_URLS:-} ]]; then
    if "$BIN" serve --help | grep -q AGORA_DATABASE_REPLICAS; then
      fresh_database "$AGORA_TEST_REPLICATED_URL" agora
      DB_URL="$(with_database "$AGORA_TEST_REPLICATED_URL")"
      local node replicas=()
      IFS=, read -ra nodes <<<"$AGORA_TEST_REPLICA_URLS"
      for node in "${nodes[@]}"; do replicas+=("$(with_database "$node")"); done
      export AGORA_DATABASE_REPLICAS
      AGORA_DATABASE_REPLICAS="$(IFS=,; printf '%s' "${replicas[*]}")"
      REPLICAS=1
      note "agora reads from the replicated formation ($AGORA_DATABASE_REPLICAS)"
    else
      note "this agora has no AGORA_DATABASE_REPLICAS: replica panels are only checked to evaluate"
    fi
  else
    note "no replicated formation in the environment: replica panels are only checked to evaluate"
  fi

  curl -fsS -o /dev/null "$PROM/-/ready" 2>/dev/null || STARTED_MONITORING=1
  "$ROOT/dev" monitoring up test || die "./dev monitoring up test failed"

  PORT="$(free_port)"
  OPS_PORT="$(free_port)"
  BASE="http://127.0.0.1:$PORT"
  start_server
  "$ROOT/dev" monitoring add-target "$TARGET" "127.0.0.1:$OPS_PORT" test
  wait_for 20 "Prometheus did not scrape agora at 127.0.0.1:$OPS_PORT" scraped_after 0
  note "agora $BASE (ops 127.0.0.1:$OPS_PORT, pid $SERVER_PID) is a scrape target"

  local traffic_start traffic_end
  traffic_start="$(date +%s.%N)"
  traffic
  traffic_end="$(date +%s.%N)"
  # rate() needs two samples in its window: the window covers the whole traffic, and the
  # evaluation waits for a scrape after it ended.
  wait_for 20 "Prometheus did not scrape agora after the traffic" scraped_after "$traffic_end"
  sleep 1

  local rc=0
  python3 - "$PROM" "$traffic_start" "$REPLICAS" "$ROOT/deploy" <<'PY' || rc=$?
import glob, json, math, os, re, sys, time, urllib.error, urllib.parse, urllib.request

prom, traffic_start, replicas, deploy = sys.argv[1], float(sys.argv[2]), sys.argv[3] == "1", sys.argv[4]
at = time.time()
window = f"{math.ceil(at - traffic_start) + 2}s"
# Series that exist only where agora reads from replicas.
REPLICA_ONLY = re.compile(r"\b(db_replica_\w+|db_reads_total|db_read_fallbacks_total|pg_stat_replication_\w+|pg_replication_slots_\w+)\b")
failures, checked, skipped = [], 0, []

def query(expr):
    """Evaluates at `at`: (series count, None) or (None, error). All-NaN counts as no data."""
    url = prom + "/api/v1/query?" + urllib.parse.urlencode({"query": expr, "time": f"{at:.3f}"})
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
    except urllib.error.HTTPError as e:
        body = json.load(e)
    except Exception as e:
        return None, str(e)
    if body.get("status") != "success":
        return None, f"{body.get('errorType')}: {body.get('error')}"
    data = body["data"]
    if data["resultType"] == "vector":
        values = [float(sample["value"][1]) for sample in data["result"]]
        if values and all(math.isnan(v) for v in values):
            return 0, None
        return len(values), None
    if data["resultType"] == "matrix":
        return len(data["result"]), None
    return 1, None

def check(where, expr, must_have_data=True):
    global checked
    checked += 1
    count, error = query(expr)
    if error:
        failures.append(f"{where}: {error}\n      {expr}")
    elif count == 0 and must_have_data:
        if REPLICA_ONLY.search(expr) and not replicas:
            skipped.append(where)
        else:
            failures.append(f"{where}: no data\n      {expr}")

# Dashboards: every target of every panel, with Grafana's variables replaced the way "All"
# and the built-in intervals would.
datasource_uid = re.search(r"^\s*uid:\s*(\S+)", open(f"{deploy}/grafana/provisioning/datasources/prometheus.yml").read(), re.M).group(1)
dashboards = sorted(glob.glob(f"{deploy}/grafana/dashboards/*.json"))
if not dashboards:
    failures.append("no dashboards in deploy/grafana/dashboards")

def panels_of(container):
    for panel in container.get("panels", []):
        yield panel
        yield from panels_of(panel)

for path in dashboards:
    dashboard = json.load(open(path))
    title = dashboard.get("title", os.path.basename(path))
    variables = {}
    for var in dashboard.get("templating", {}).get("list", []):
        value = var.get("allValue") if var.get("includeAll") else (var.get("current") or {}).get("value")
        if value is None:
            failures.append(f"{title}: variable {var.get('name')} has neither allValue nor a current value")
            continue
        variables[var["name"]] = value if isinstance(value, str) else "|".join(value)
    builtins = {"__rate_interval": window, "__range": window, "__interval": "5s"}

    def substitute(expr):
        for name, value in sorted({**builtins, **variables}.items(), key=lambda kv: -len(kv[0])):
            expr = re.sub(r"\$\{" + re.escape(name) + r"(?::[^}]*)?\}|\$" + re.escape(name) + r"\b|\[\[" + re.escape(name) + r"\]\]",
                          lambda _m, v=value: v, expr)
        return expr

    ids = set()
    for panel in panels_of(dashboard):
        if panel.get("type") in ("row", "text"):
            continue
        where = f"{title} / {panel.get('title', '(untitled)')}"
        if panel.get("id") in ids:
            failures.append(f"{where}: duplicate panel id {panel.get('id')}")
        ids.add(panel.get("id"))
        targets = panel.get("targets") or []
        if not targets:
            failures.append(f"{where}: no targets")
        for target in targets:
            uid = (target.get("datasource") or panel.get("datasource") or {}).get("uid")
            if uid != datasource_uid:
                failures.append(f"{where}: datasource uid {uid!r}, provisioned is {datasource_uid!r}")
            expr = target.get("expr", "")
            if not expr.strip():
                failures.append(f"{where} [{target.get('refId')}]: empty expression")
                continue
            check(f"{where} [{target.get('refId')}]", substitute(expr))

# Alert rules: as Prometheus loaded them, which must be the repo's.
def top_level_comparison(expr):
    """The expression left of its first comparison outside brackets and strings."""
    depth, quote, i = 0, None, 0
    while i < len(expr):
        c = expr[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = None
        elif c in "\"'`":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0 and (expr.startswith(("==", "!=", ">=", "<="), i) or c in "<>"):
            return expr[:i].strip()
        i += 1
    return None

with urllib.request.urlopen(prom + "/api/v1/rules?type=alert", timeout=10) as response:
    groups = json.load(response)["data"]["groups"]
loaded = {rule["name"]: rule for group in groups for rule in group["rules"]}
wanted = set(re.findall(r"^\s*- alert:\s*(\S+)", open(f"{deploy}/monitoring/alerts.yml").read(), re.M))
if set(loaded) != wanted:
    failures.append(f"Prometheus runs alerts {sorted(loaded)}, deploy/monitoring/alerts.yml has {sorted(wanted)}")
for name, rule in sorted(loaded.items()):
    where = f"alert {name}"
    if rule.get("health") != "ok":
        failures.append(f"{where}: health {rule.get('health')}: {rule.get('lastError')}")
    check(where, rule["query"], must_have_data=False)
    measured = top_level_comparison(rule["query"])
    if measured is None:
        failures.append(f"{where}: no comparison to split at\n      {rule['query']}")
    else:
        check(f"{where} (measured side)", measured)

print(f"monitoring: {checked} queries evaluated at {time.strftime('%H:%M:%S', time.localtime(at))} with [{window}] windows over {len(dashboards)} dashboards and {len(loaded)} alert rules")
if skipped:
    print(f"monitoring: {len(skipped)} replica-only queries had no data and were not required to "
          "(no replicas configured): " + "; ".join(skipped))
for failure in failures:
    print(f"monitoring: FAIL {failure}", file=sys.stderr)
sys.exit(1 if failures else 0)
PY
  # The rules as files, too: what a deployment would load.
  promtool check rules "$ROOT/deploy/monitoring/alerts.yml" >/dev/null || {
    promtool check rules "$ROOT/deploy/monitoring/alerts.yml" >&2 || true
    rc=1
  }
  (cd "$ROOT/deploy/monitoring" && promtool check config prometheus.yml >/dev/null 2>"$OUT/promtool.log") || {
    cat "$OUT/promtool.log" >&2
    rc=1
  }
  if ((rc == 0)); then
    note "PASSED in $((SECONDS - t0))s"
  else
    note "FAILED (server log: $SERVER_LOG)"
  fi
  return "$rc"
}

main "$@"
