#!/usr/bin/env bash
# Contract test: run schemathesis against a real `agora serve` (social network, dialogs, shop)
# on freshly migrated databases, so the OpenAPI document and the server cannot drift apart.
#
# Needs the test stack (./dev stack up test); `./dev test` runs this for you.
# Env: AGORA_BIN (default $CARGO_TARGET_DIR/debug/agora), AGORA_TEST_DATABASE_URL
#      (admin URL of the test PostgreSQL), AGORA_CONTRACT_MAX_EXAMPLES (40).
# Extra arguments go to `schemathesis run` (e.g. --seed 1, --include-path /login).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${XDG_CACHE_HOME:-$HOME/.cache}/agora/venv"
SCHEMATHESIS_REQ='schemathesis>=4,<5'
CHECKS=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance
MAX_EXAMPLES="${AGORA_CONTRACT_MAX_EXAMPLES:-40}"
DB_NAME=agora_contract
PASSWORD=contract-pass-1

note() { printf 'contract: %s\n' "$*"; }
die() { printf 'contract: error: %s\n' "$*" >&2; exit 1; }
# shellcheck source=scripts/test-lib.sh
. "$ROOT/scripts/test-lib.sh"

# A venv in the user cache survives `cargo clean` and is shared by clones.
ensure_venv() {
  local py="$VENV/bin/python"
  # A venv whose interpreter vanished (e.g. pyenv upgrade) is rebuilt.
  if [[ -x $py ]] && ! "$py" -c '' 2>/dev/null; then rm -rf "$VENV"; fi
  if [[ ! -x $py ]]; then
    command -v python3 >/dev/null || die "python3 not found (apt-get install python3 python3-venv)"
    mkdir -p "$(dirname "$VENV")"
    python3 -m venv "$VENV" || die "could not create $VENV (on Debian: apt-get install python3-venv)"
  fi
  if ! "$py" - <<'PY' 2>/dev/null; then
import importlib.metadata as m, sys
sys.exit(0 if m.version("schemathesis").split(".")[0] == "4" else 1)
PY
    note "installing $SCHEMATHESIS_REQ into $VENV"
    "$py" -m pip install -q --disable-pip-version-check "$SCHEMATHESIS_REQ" ||
      die "pip install $SCHEMATHESIS_REQ failed"
  fi
}

# One small HTTP client for the whole script: no curl/jq needed.
http() { # method url [json-body] -> prints "STATUS BODY"
  "$VENV/bin/python" - "$@" <<'PY'
import sys, urllib.request, urllib.error
method, url = sys.argv[1], sys.argv[2]
data = sys.argv[3].encode() if len(sys.argv) > 3 else None
req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"} if data else {})
try:
    with urllib.request.urlopen(req, timeout=5) as r:
        print(r.status, r.read().decode(errors="replace"))
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode(errors="replace"))
except Exception as e:
    print(0, e)
PY
}

json_field() { # field  (reads JSON on stdin)
  "$VENV/bin/python" -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}

SERVER_PID=""
trap stop_server EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start_server() {
  AGORA_DATABASE_URL="$DB_URL" "$BIN" migrate --shop >>"$SERVER_LOG" 2>&1 || {
    tail -n 20 "$SERVER_LOG" >&2
    die "agora migrate failed (log: $SERVER_LOG)"
  }
  AGORA_DATABASE_URL="$DB_URL" AGORA_LISTEN="127.0.0.1:$PORT" AGORA_OPS_LISTEN=api \
    AGORA_SERVICES=social,dialogs,shop,ugc "$BIN" serve >>"$SERVER_LOG" 2>&1 &
  SERVER_PID=$!
  local i
  for ((i = 0; i < 60; i++)); do
    kill -0 "$SERVER_PID" 2>/dev/null || {
      tail -n 20 "$SERVER_LOG" >&2
      die "agora serve exited during startup (log: $SERVER_LOG)"
    }
    [[ "$(http GET "$BASE/health")" == "200 "* ]] && return 0
    sleep 0.5
  done
  die "GET $BASE/health did not return 200 within 30 s (log: $SERVER_LOG)"
}

login_token() {
  local reply user_id
  reply="$(http POST "$BASE/user/register" "{\"first_name\":\"Contract\",\"second_name\":\"Test\",\"password\":\"$PASSWORD\"}")"
  [[ $reply == 2??" "* ]] || die "POST /user/register: $reply"
  user_id="$(json_field user_id <<<"${reply#* }")" || die "no user_id in: $reply"
  reply="$(http POST "$BASE/login" "{\"id\":\"$user_id\",\"password\":\"$PASSWORD\"}")"
  [[ $reply == 200" "* ]] || die "POST /login: $reply"
  json_field token <<<"${reply#* }" || die "no token in: $reply"
}

summary() { # junit-file exit-code
  "$VENV/bin/python" - "$@" <<'PY'
import sys, xml.etree.ElementTree as ET
path, rc = sys.argv[1], int(sys.argv[2])
verdict = "PASSED" if rc == 0 else f"FAILED (schemathesis exit {rc})"
try:
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    n = lambda k: sum(int(s.get(k, 0)) for s in suites)
    print(f"contract: {verdict}: {n('tests')} tests, {n('failures')} failures, {n('errors')} errors, {n('skipped')} skipped")
except Exception:
    print(f"contract: {verdict}")
PY
}

main() {
  BIN="${AGORA_BIN:-$(target_dir)/debug/agora}"
  OUT="$(target_dir)/contract-test"
  SERVER_LOG="$OUT/server.log"
  ensure_venv
  [[ -x $BIN ]] || die "no agora binary at $BIN (cargo build -p agora, or set AGORA_BIN)"
  if [[ -z ${AGORA_TEST_DATABASE_URL:-} ]]; then
    eval "$("$ROOT/dev" env test)"
  fi
  ADMIN_URL=$AGORA_TEST_DATABASE_URL
  DB_URL="${ADMIN_URL%/*}/$DB_NAME"
  mkdir -p "$OUT"
  : >"$SERVER_LOG"

  fresh_database "$ADMIN_URL"
  # Dialogs on two of the test stack's shard servers.
  local shard_admin i=0
  export AGORA_DIALOG_SHARDS=""
  IFS=, read -ra shard_admins <<<"${AGORA_TEST_SHARD_URLS:?}"
  for shard_admin in "${shard_admins[@]:0:2}"; do
    i=$((i + 1))
    fresh_database "$shard_admin"
    AGORA_DIALOG_SHARDS+="${AGORA_DIALOG_SHARDS:+,}shard$i=${shard_admin%/*}/$DB_NAME"
  done
  # The shop on a database of its own (without pgpool-II: the contract is the same).
  DB_NAME=agora_contract_shop fresh_database "$ADMIN_URL"
  export AGORA_SHOP_DATABASE_URL="${ADMIN_URL%/*}/agora_contract_shop"
  # UGC on a database of its own, as agora migrate makes it.
  DB_NAME=agora_contract_ugc fresh_database "$ADMIN_URL"
  export AGORA_UGC_DATABASE_URL="${ADMIN_URL%/*}/agora_contract_ugc"
  PORT="$(free_port)"
  BASE="http://127.0.0.1:$PORT"
  start_server
  local token rc=0
  token="$(login_token)"
  note "server $BASE (pid $SERVER_PID), running schemathesis ($MAX_EXAMPLES examples per operation)"
  # cd: schemathesis/hypothesis write scratch files into the cwd.
  # The logout paths would end the one session every other operation runs with; the API
  # tests cover them (tests/api/hardening.rs).
  (cd "$OUT" && "$VENV/bin/schemathesis" run "$BASE/api/openapi.json" \
    --checks "$CHECKS" \
    --exclude-path /logout --exclude-path /logout/all \
    --max-examples "$MAX_EXAMPLES" \
    -H "Authorization: Bearer $token" \
    --generation-database none \
    --report junit --report-junit-path "$OUT/junit.xml" \
    "$@") || rc=$?
  stop_server
  summary "$OUT/junit.xml" "$rc"
  note "server log: $SERVER_LOG, junit: $OUT/junit.xml"
  return "$rc"
}

main "$@"
