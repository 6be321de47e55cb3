#!/usr/bin/env bash
# What delivering posts by commit order costs (docs/benchmarks/commit-order.md), reproduced with
# one command: `./dev bench commit-order`, which starts the dev stack and runs this script.
#
# In its own database agora_commit_order on the dev PostgreSQL (migrated by `agora migrate`), a
# celebrity with 100,000 followers and 999 authors with 100 followers each. pgbench runs, in
# alternating rounds, each workload as it was before the follow clock (migration V4) and as
# it is now, on the same server in the same run:
#   - post: a post and its outbox row in one transaction, by a random author (now: the shared
#     advisory lock and the author's tick in the outbox row);
#   - fan-out: one batch of 1000 followers of the celebrity at a random keyset position (now:
#     as of a tick, with the ended friendships beside, on the index that includes the tick);
#   - befriend: befriend and unfriend the celebrity, each in its transaction, by 8 clients at
#     once (now: the exclusive lock on the celebrity's clock serialises them).
# Env: AGORA_BIN_DIR, AGORA_PG_BIN, AGORA_PG_PORT (set by ./dev); BENCH_DURATION (10 s a round),
#      BENCH_ROUNDS (3), BENCH_CLIENTS (8), BENCH_OUT (docs/benchmarks).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=common.sh
. "$ROOT/scripts/bench/common.sh"
DB=agora_commit_order
export AGORA_DATABASE_URL="postgres://agora:agora@127.0.0.1:$AGORA_PG_PORT/$DB"
DURATION=${BENCH_DURATION:-10}
ROUNDS=${BENCH_ROUNDS:-3}
CLIENTS=${BENCH_CLIENTS:-8}
OUT=${BENCH_OUT:-$ROOT/docs/benchmarks}
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

PGPASSWORD=agora "$PSQL" -X -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
"$BIN/agora" migrate >/dev/null
note "seeding: a celebrity with 100,000 followers, 999 authors with 100 each"
sql <<'SQL'
INSERT INTO users (id, first_name, second_name, password_hash)
SELECT n, 'U', 'U' || n, 'not used' FROM generate_series(1, 300000) n;
INSERT INTO friendships (user_id, friend_id) SELECT n, 1 FROM generate_series(1001, 101000) n;
INSERT INTO friendships (user_id, friend_id)
SELECT 1001 + (a * 7919 + k * 104729) % 100000, a FROM generate_series(2, 1000) a, generate_series(1, 100) k
ON CONFLICT DO NOTHING;
-- Now: the celebrity's clock has moved, and some friendships ended while posts were on their way.
INSERT INTO follow_clocks (author_id, tick) VALUES (1, 5000);
INSERT INTO ended_friendships (user_id, friend_id, since_tick, until_tick)
SELECT n, 1, 0, 4000 + n % 1000 FROM generate_series(101001, 102000) n;
VACUUM ANALYZE;
SQL

cat >"$WORK/post-before.sql" <<'SQL'
\set author random(2, 1000)
BEGIN;
INSERT INTO posts (author_id, text) VALUES (:author, 'hello') RETURNING id AS post \gset
INSERT INTO feed_outbox (kind, actor_id, subject_id) VALUES ('post_created', :author, :post);
COMMIT;
SQL
cat >"$WORK/post-after.sql" <<'SQL'
\set author random(2, 1000)
BEGIN;
INSERT INTO posts (author_id, text) SELECT :author, 'hello' FROM pg_advisory_xact_lock_shared(0, :author) RETURNING id AS post \gset
INSERT INTO feed_outbox (kind, actor_id, subject_id, tick) VALUES ('post_created', :author, :post, coalesce((SELECT tick FROM follow_clocks WHERE author_id = :author), 0));
COMMIT;
SQL
cat >"$WORK/fanout-before.sql" <<'SQL'
\set after random(1000, 100000)
SELECT user_id FROM friendships WHERE friend_id = 1 AND user_id > :after ORDER BY user_id LIMIT 1000;
SQL
cat >"$WORK/fanout-after.sql" <<'SQL'
\set after random(1000, 100000)
(SELECT user_id, false FROM friendships WHERE friend_id = 1 AND user_id > :after AND since_tick <= 4500 ORDER BY user_id LIMIT 1000) UNION ALL (SELECT user_id, true FROM ended_friendships WHERE friend_id = 1 AND user_id > :after AND since_tick <= 4500 AND until_tick > 4500 ORDER BY user_id LIMIT 1000) ORDER BY 1 LIMIT 1000;
SQL
cat >"$WORK/befriend-before.sql" <<'SQL'
\set user random(200001, 300000)
BEGIN;
INSERT INTO friendships (user_id, friend_id) VALUES (:user, 1) ON CONFLICT DO NOTHING;
INSERT INTO feed_outbox (kind, actor_id, subject_id) VALUES ('friend_added', :user, 1);
COMMIT;
BEGIN;
DELETE FROM friendships WHERE user_id = :user AND friend_id = 1;
INSERT INTO feed_outbox (kind, actor_id, subject_id) VALUES ('friend_removed', :user, 1);
COMMIT;
SQL
cat >"$WORK/befriend-after.sql" <<'SQL'
\set user random(200001, 300000)
BEGIN;
SELECT pg_advisory_xact_lock(0, 1);
WITH clock AS (INSERT INTO follow_clocks (author_id, tick) VALUES (1, 1) ON CONFLICT (author_id) DO UPDATE SET tick = follow_clocks.tick + 1 RETURNING tick) INSERT INTO friendships (user_id, friend_id, since_tick) SELECT :user, 1, tick FROM clock ON CONFLICT ON CONSTRAINT friendships_pkey DO NOTHING RETURNING since_tick AS tick \gset
INSERT INTO feed_outbox (kind, actor_id, subject_id, tick) VALUES ('friend_added', :user, 1, :tick);
COMMIT;
BEGIN;
SELECT pg_advisory_xact_lock(0, 1);
WITH gone AS (DELETE FROM friendships WHERE user_id = :user AND friend_id = 1 RETURNING since_tick), clock AS (INSERT INTO follow_clocks (author_id, tick) SELECT 1, 1 FROM gone ON CONFLICT (author_id) DO UPDATE SET tick = follow_clocks.tick + 1 RETURNING tick) INSERT INTO ended_friendships (user_id, friend_id, since_tick, until_tick) SELECT :user, 1, gone.since_tick, clock.tick FROM gone, clock RETURNING until_tick AS tick \gset
INSERT INTO feed_outbox (kind, actor_id, subject_id, tick) VALUES ('friend_removed', :user, 1, :tick);
COMMIT;
SQL

# The index each variant's fan-out reads (the old one was replaced by V4).
use_index() { # before | after
  if [[ $1 == before ]]; then
    sql -c "DROP INDEX IF EXISTS friendships_followers_idx" \
      -c "CREATE INDEX IF NOT EXISTS friendships_friend_id_idx ON friendships (friend_id, user_id)"
  else
    sql -c "DROP INDEX IF EXISTS friendships_friend_id_idx" \
      -c "CREATE INDEX IF NOT EXISTS friendships_followers_idx ON friendships (friend_id, user_id) INCLUDE (since_tick)"
  fi
  sql -c "ANALYZE friendships"
}

declare -A TPS LAT
for workload in post fanout befriend; do
  for variant in before after; do TPS[$workload.$variant]="" LAT[$workload.$variant]=""; done
done
for ((round = 1; round <= ROUNDS; round++)); do
  for variant in before after; do
    use_index "$variant"
    for workload in post fanout befriend; do
      read -r tps lat < <(pgbench_run "$AGORA_DATABASE_URL" "$WORK/$workload-$variant.sql" "$CLIENTS")
      TPS[$workload.$variant]+="${TPS[$workload.$variant]:+ }$tps"
      LAT[$workload.$variant]+="${LAT[$workload.$variant]:+ }$lat"
      note "round $round, $workload $variant: $tps/s, mean $lat ms"
    done
  done
done

{
  cat <<EOF
# What commit order costs

Reproduce: \`./dev bench commit-order\` ($(date -u +%Y-%m-%d), $(nproc) cores shared by pgbench and
PostgreSQL $("$AGORA_PG_BIN/postgres" --version | awk '{print $3}'), $CLIENTS clients, $ROUNDS alternating
rounds of $DURATION s per workload and variant; medians of the rounds).

Since migration V4 a post reaches the followers of its author *as of its commit*
([live.md](../live.md#commit-order)): posts take a shared advisory lock on their author's follow
clock and record its tick, friendship changes take it exclusively and advance it, and the
fan-out reads followers as of the post's tick. Each workload below runs as it was before and as
it is now, on the same server in the same run ($(basename "$0")):

| workload | before | now | now / before | mean latency before → now |
|---|---:|---:|---:|---|
EOF
  for workload in post fanout befriend; do
    b=$(median <<<"${TPS[$workload.before]}") a=$(median <<<"${TPS[$workload.after]}")
    lb=$(median <<<"${LAT[$workload.before]}") la=$(median <<<"${LAT[$workload.after]}")
    case $workload in
      post) label="a post and its outbox row, random author" ;;
      fanout) label="a fan-out batch: 1000 of a celebrity's 100,000 followers" ;;
      befriend) label="befriend + unfriend the same celebrity, $CLIENTS clients at once" ;;
    esac
    printf '| %s | %s/s | %s/s | %s | %s → %s ms |\n' "$label" "$b" "$a" \
      "$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", a / b }')" "$lb" "$la"
  done
  printf '\nRounds (per second):'
  for workload in post fanout befriend; do
    printf ' %s before %s, now %s;' "$workload" "${TPS[$workload.before]}" "${TPS[$workload.after]}"
  done
  cat <<'EOF'


What the figures say:

- **Posts** pay one shared advisory lock (a lock-table entry, no row written) and a primary-key
  lookup of the author's clock inside the outbox insert: no extra round trip, and no
  difference beyond the noise between rounds.
- **The fan-out** still reads followers from the index alone (`INCLUDE (since_tick)`, no heap
  fetch). What a batch costs more is the ended friendships beside them: this study gives the
  celebrity 1,000 friendships that ended within the day, half of them after the post's tick,
  so every batch merges about 500 of them in (PostgreSQL sorts that small table rather than
  use its index). That is the pessimistic case: an author with 10,000 followers or more is
  never fanned out (their posts are merged at read time), so ordinary authors' batches meet
  a handful of ended friendships, and the worker prunes them after a day.
- **Friendship changes of one author** now wait for each other and for the author's posts in
  flight: that is the price of an order between them. Eight clients befriending and leaving
  the *same* author at once get half the throughput; changes of different authors do not
  meet, so this bounds only how fast one account can gain or lose followers (about 600
  changes a second here).
EOF
} >"$OUT/commit-order.md"
note "report: $OUT/commit-order.md"
