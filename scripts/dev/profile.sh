# shellcheck shell=bash
# Stack profiles (dev, test), sourced by ./dev: load_profile sets every port, path and URL of a
# profile, and env_lines prints the connection environment that `./dev env`, `./dev up` and
# `./dev test` share.

# The replicated formation runs in the test stack, and in the dev stack on request.
WANT_REPLICATION=0

# The variables set here are read by the other files of scripts/dev/.
# shellcheck disable=SC2034
load_profile() {
  PROFILE=${1:-dev}
  # Every port lies above Linux's ephemeral range (32768-60999): a port in it can be taken by
  # any outgoing connection (a load test opens thousands), and a restart then fails with
  # EADDRINUSE.
  case $PROFILE in
    dev) PG_PORT=61432 REDIS_PORT=63790 AMQP_PORT=61672 DIST_PORT=61673 EPMD_PORT=61369
      SHARD_PORTS=(61442 61443) REPLICA_MONITOR_PORT=61450 REPLICA_PORTS=(61451 61452 61453) ;;
    # Tests get a third shard server to reshard onto.
    test) PG_PORT=62432 REDIS_PORT=63800 AMQP_PORT=62672 DIST_PORT=62673 EPMD_PORT=62369
      SHARD_PORTS=(62442 62443 62444) REPLICA_MONITOR_PORT=62450 REPLICA_PORTS=(62451 62452 62453) ;;
    *) die "unknown profile '$PROFILE' (expected dev or test)" ;;
  esac
  STACK="$STACK_BASE/$PROFILE"
  LOGS="$STACK/logs"
  # Tests always have the replicated formation; dev has it after `./dev up --replicated`.
  [[ $PROFILE == test || -e $STACK/replicated.enabled ]] && WANT_REPLICATION=1
  RMQ_NODE="agora-$PROFILE@localhost"
  MAIN_PG_PORT=$PG_PORT
  DATABASE_URL="postgres://agora:agora@127.0.0.1:$PG_PORT/agora"
  REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
  AMQP_URL="amqp://guest:guest@127.0.0.1:$AMQP_PORT/%2f"
  # The dialogs' shard servers (docs/dialogs.md): the dev stack's serve dialogs; the test
  # stack's are where tests create their shard databases.
  DIALOG_SHARDS="" TEST_SHARD_URLS=""
  local i
  for i in "${!SHARD_PORTS[@]}"; do
    DIALOG_SHARDS+="${DIALOG_SHARDS:+,}shard$((i + 1))=postgres://agora:agora@127.0.0.1:${SHARD_PORTS[$i]}/agora"
    TEST_SHARD_URLS+="${TEST_SHARD_URLS:+,}postgres://agora:agora@127.0.0.1:${SHARD_PORTS[$i]}/postgres"
  done
  pg_use main
  rmq_env
}

# The one place the connection env is defined; `env`, `up` and `test` share it.
env_lines() {
  printf 'export AGORA_DATABASE_URL=%s\n' "$DATABASE_URL"
  printf 'export AGORA_REDIS_URL=%s\n' "$REDIS_URL"
  printf 'export AGORA_AMQP_URL=%s\n' "$AMQP_URL"
  # UGC keeps its own database on the main server; `agora migrate` creates it.
  printf 'export AGORA_UGC_DATABASE_URL=%s\n' "postgres://agora:agora@127.0.0.1:$MAIN_PG_PORT/agora_ugc"
  if [[ $PROFILE == test ]]; then
    # Tests create their own databases, so they get the maintenance DBs.
    printf 'export AGORA_TEST_DATABASE_URL=%s\n' "postgres://agora:agora@127.0.0.1:$MAIN_PG_PORT/postgres"
    printf 'export AGORA_TEST_SHARD_URLS=%s\n' "$TEST_SHARD_URLS"
    # The replicated formation (docs/replication.md): its primary wherever it is, its nodes,
    # and ./dev itself, which the failover tests use to kill and restart nodes.
    printf 'export AGORA_TEST_REPLICATED_URL=%s\n' "$(replication_primary_url postgres)"
    printf 'export AGORA_TEST_REPLICA_URLS=%s\n' "$(replication_node_urls postgres)"
    printf 'export AGORA_TEST_REPLICA_MONITOR_URL=%s\n' "$(replica_monitor_uri | sed 's/autoctl_node/postgres/')"
    printf 'export AGORA_TEST_DEV=%s\n' "$ROOT/dev"
  else
    printf 'export AGORA_DIALOG_SHARDS=%s\n' "$DIALOG_SHARDS"
    # `./dev up --replicated` moved the platform's database to the formation.
    if [[ -e $STACK/replicated.enabled ]]; then
      printf 'export AGORA_DATABASE_URL=%s\n' "$(replication_primary_url agora)"
      printf 'export AGORA_DATABASE_REPLICAS=%s\n' "$(replication_node_urls agora)"
      # UGC's ratings and reviews on the formation too (created there by `agora migrate`).
      printf 'export AGORA_UGC_DATABASE_URL=%s\n' "$(replication_primary_url agora_ugc)"
    fi
  fi
}
export_env() { eval "$(env_lines)"; }
