# shellcheck shell=bash
# ./dev bench STUDY, sourced by ./dev: one study of docs/benchmarks/, run by
# scripts/bench/STUDY.sh against the dev stack and a release build. The studies are the
# `bench` rows of ./dev's command table.

# shellcheck disable=SC2034 # EXTRA_TOOLS, WANT_REPLICATION: for ensure_packages and stack_up
cmd_bench() { # study
  local study=${1:-}
  command_has_subcommand bench "$study" || usage
  command -v cargo >/dev/null || die "cargo not found"
  EXTRA_TOOLS=(rsvg-convert:librsvg2-bin)
  load_profile dev
  # The replication study reads the formation and the exporters' CPU figures.
  [[ $study == replication || $study == outbox-wake ]] && WANT_REPLICATION=1
  # Leave a dev stack that was already running as it was; stop one we started.
  PG_BIN="$(pg_bindir)" || PG_BIN=""
  if [[ -z $PG_BIN ]] || ! pg_running; then on_exit stack_down; fi
  stack_up
  (cd "$ROOT" && cargo build --release -p agora -p agora-bench) || die "release build failed"
  # The shard servers: "port:pid" each, for the studies that use them.
  local shard shards=""
  for shard in $(shard_names); do
    pg_use "$shard"
    shards+="${shards:+ }$PG_PORT:$(pg_pid)"
  done
  pg_use main
  # The shop study runs ./dev shop itself.
  [[ $study == shop ]] && unlock
  if [[ $study == ugc-storage ]]; then
    # Ten million ratings with their indexes need more than the default arena.
    AGORA_TARANTOOL_MEMTX_MB=${AGORA_TARANTOOL_MEMTX_MB:-6144}
    unlock
    ugc_stores_stop
    ugc_stores_up
    eval "$(ugc_stores_env)"
  fi
  if [[ $study == replication ]]; then
    monitoring_up
    unlock
    export AGORA_REPLICA_PORTS="${REPLICA_PORTS[*]}" AGORA_PROCESS_EXPORTER="127.0.0.1:$MON_PROCESS_PORT"
  fi
  [[ $study == outbox-wake ]] && export AGORA_REPLICA_PORTS="${REPLICA_PORTS[*]}"
  AGORA_BIN_DIR="$(target_dir)/release" AGORA_PG_BIN="$PG_BIN" AGORA_PG_PORT="$PG_PORT" \
    AGORA_PG_PID="$(pg_pid)" AGORA_SHARD_SERVERS="$shards" AGORA_REDIS_PORT="$REDIS_PORT" \
    AGORA_REDIS_PID="$(live_pid "$STACK/redis.pid" redis-server || echo 0)" "$ROOT/scripts/bench/$study.sh"
}
