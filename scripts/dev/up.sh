# shellcheck shell=bash
# ./dev up and ./dev down, sourced by ./dev: agora itself (server and feed worker) on the dev
# stack, built in release mode, migrated and seeded with the demo.

agora_listen() { printf '%s\n' "${AGORA_LISTEN:-127.0.0.1:8080}"; }

agora_stop() {
  stop_pid "agora server" "$STACK_BASE/dev/agora.pid" agora 20
  stop_pid "agora worker" "$STACK_BASE/dev/worker.pid" agora 20
}

cmd_up() { # [--replicated|--single]
  (($# <= 1)) || usage
  command -v cargo >/dev/null || die "cargo not found"
  case ${1:-} in
    "") ;;
    --replicated) mkdir -p "$STACK_BASE/dev" && touch "$STACK_BASE/dev/replicated.enabled" ;;
    --single) rm -f "$STACK_BASE/dev/replicated.enabled" ;;
    *) usage ;;
  esac
  load_profile dev
  local running
  if running="$(live_pid "$STACK/agora.pid" agora)"; then
    die "agora server already running (pid $running); ./dev down first"
  fi
  # From here on, leaving ./dev up (Ctrl-C, error, server exit) stops the server and the dev stack.
  on_exit 'agora_stop; stack_down'
  stack_up
  export_env
  export AGORA_LISTEN
  AGORA_LISTEN="$(agora_listen)"
  (cd "$ROOT" && cargo build --release -p agora) || die "cargo build --release -p agora failed"
  local bin seed_out port
  bin="$(target_dir)/release/agora"
  [[ -x $bin ]] || die "no binary at $bin after the build"
  "$bin" migrate || die "agora migrate failed"
  seed_out="$("$bin" seed demo)" || die "agora seed demo failed"
  port=${AGORA_LISTEN##*:}
  note ""
  note "agora on http://localhost:$port  (Ctrl-C stops the server and the dev stack)"
  note "  web       http://localhost:$port/  (sign up, or sign in with the demo id below; docs/ui.md)"
  note "  API docs  http://localhost:$port/api/swagger-ui.html"
  note "  live feed ws://localhost:$port/post/feed/posted  (bearer token; docs/live.md)"
  note "  UGC       http://localhost:$port/ugc/films/{film_id}/rating, /reviews, /ugc/bookmarks  (docs/ugc.md)"
  note "  metrics   http://${AGORA_OPS_LISTEN:-127.0.0.1:9464}/metrics  (and /ready)"
  note "  health    http://localhost:$port/health"
  [[ -z $seed_out ]] || printf '%s\n' "$seed_out" | sed 's/^/  /'
  local worker_ops=${AGORA_WORKER_OPS_LISTEN:-127.0.0.1:9465}
  note "  worker    feed fan-out (log: $LOGS/worker.log; metrics http://$worker_ops/metrics)"
  note ""
  AGORA_WORKER_OPS_LISTEN=$worker_ops "$bin" worker >>"$LOGS/worker.log" 2>&1 &
  local worker_pid=$!
  printf '%s\n' "$worker_pid" >"$STACK/worker.pid"
  # A worker that could not start (its ops port taken, say) would leave feeds silently still.
  sleep 1
  kill -0 "$worker_pid" 2>/dev/null || {
    log_tail "$LOGS/worker.log"
    die "agora worker exited at start (log: $LOGS/worker.log)"
  }
  "$bin" serve &
  printf '%s\n' "$!" >"$STACK/agora.pid"
  local rc=0
  wait "$!" || rc=$?
  exit "$rc"
}

cmd_down() {
  (($# == 0)) || usage
  load_profile dev
  agora_stop
  stack_down
}
