//! Friendships, and the followers of an author as of a tick of their follow clock.

use std::time::Duration;

use agora_platform::db::{self, DbError};

use super::Store;
use super::outbox::{FeedEventKind, append_outbox};

/// A follower of an author as of one of the author's ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Follower {
    pub user_id: i64,
    /// The friendship ended after that tick: the user gets the post live, but their feed,
    /// which now shows only current friends, does not.
    pub ended: bool,
}

/// The tick that stands for "now": every current friendship and no ended one.
pub const CURRENT_FOLLOWERS: i64 = i64::MAX;

/// The two halves of the advisory lock key of an author's follow clock. The two-integer form
/// of the key lives in a space of its own, apart from single-bigint keys such as the
/// migration lock's.
pub(super) fn follow_clock_key(author_id: i64) -> (i32, i32) {
    ((author_id >> 32) as i32, author_id as i32)
}

/// Takes the exclusive advisory lock on an author's follow clock until the transaction ends,
/// for a friendship change (posts take it shared; see V4's migration).
async fn lock_follow_clock(
    tx: &deadpool_postgres::Transaction<'_>,
    author_id: i64,
) -> Result<(), DbError> {
    let (high, low) = follow_clock_key(author_id);
    let statement = tx
        .prepare_cached("SELECT pg_advisory_xact_lock($1, $2)")
        .await?;
    tx.execute(&statement, &[&high, &low]).await?;
    Ok(())
}

impl Store {
    /// Idempotent. `Ok(false)` when `friend_id` does not exist. A new friendship and its
    /// outbox event commit together, in order with the friend's posts (see V4's migration).
    pub async fn add_friend(&self, user_id: i64, friend_id: i64) -> Result<bool, DbError> {
        let mut db = self.pool.get().await?;
        let tx = db.transaction().await?;
        lock_follow_clock(&tx, friend_id).await?;
        let statement = tx
            .prepare_cached(
                "WITH clock AS ( \
                     INSERT INTO follow_clocks (author_id, tick) VALUES ($2, 1) \
                     ON CONFLICT (author_id) DO UPDATE SET tick = follow_clocks.tick + 1 \
                     RETURNING tick) \
                 INSERT INTO friendships (user_id, friend_id, since_tick) \
                 SELECT $1, $2, tick FROM clock \
                 ON CONFLICT ON CONSTRAINT friendships_pkey DO NOTHING RETURNING since_tick",
            )
            .await?;
        let inserted = match tx
            .query_opt(&statement, &[&user_id, &friend_id])
            .await
            .map_err(DbError::from)
        {
            Ok(inserted) => inserted,
            Err(error)
                if matches!(
                    error.violated_constraint(),
                    Some("friendships_friend_id_fkey" | "follow_clocks_author_id_fkey")
                ) =>
            {
                return Ok(false);
            }
            Err(error) => return Err(error),
        };
        if let Some(row) = inserted {
            let tick: i64 = row.get(0);
            append_outbox(
                &tx,
                FeedEventKind::FriendAdded,
                user_id,
                friend_id,
                Some(tick),
            )
            .await?;
        }
        self.commit(tx).await?;
        self.db.written(&db, user_id).await;
        Ok(true)
    }

    /// Ends a friendship; returns the friend's tick at which it ended (`None`: there was
    /// none). Posts the friend made before it still reach the user live.
    pub async fn remove_friend(
        &self,
        user_id: i64,
        friend_id: i64,
    ) -> Result<Option<i64>, DbError> {
        let mut db = self.pool.get().await?;
        let tx = db.transaction().await?;
        lock_follow_clock(&tx, friend_id).await?;
        let statement = tx
            .prepare_cached(
                "WITH gone AS ( \
                     DELETE FROM friendships WHERE user_id = $1 AND friend_id = $2 \
                     RETURNING since_tick), \
                 clock AS ( \
                     INSERT INTO follow_clocks (author_id, tick) SELECT $2, 1 FROM gone \
                     ON CONFLICT (author_id) DO UPDATE SET tick = follow_clocks.tick + 1 \
                     RETURNING tick) \
                 INSERT INTO ended_friendships (user_id, friend_id, since_tick, until_tick) \
                 SELECT $1, $2, gone.since_tick, clock.tick FROM gone, clock RETURNING until_tick",
            )
            .await?;
        let ended: Option<i64> = tx
            .query_opt(&statement, &[&user_id, &friend_id])
            .await?
            .map(|row| row.get(0));
        if let Some(tick) = ended {
            append_outbox(
                &tx,
                FeedEventKind::FriendRemoved,
                user_id,
                friend_id,
                Some(tick),
            )
            .await?;
        }
        self.commit(tx).await?;
        self.db.written(&db, user_id).await;
        Ok(ended)
    }

    /// Which of `candidates` the user has as friends.
    pub async fn friends_among(
        &self,
        user_id: i64,
        candidates: &[i64],
    ) -> Result<Vec<i64>, DbError> {
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        db::query_column(
            &self.pool,
            "SELECT friend_id FROM friendships WHERE user_id = $1 AND friend_id = ANY($2)",
            &[&user_id, &candidates],
        )
        .await
    }

    /// The next `limit` followers of an author after `after` (keyset paging for fan-out), as
    /// of the author's `tick`: friendships that began at or before it and had not ended by it.
    /// [`CURRENT_FOLLOWERS`] asks for today's followers.
    pub async fn followers_after(
        &self,
        author_id: i64,
        after: i64,
        limit: i64,
        tick: i64,
    ) -> Result<Vec<Follower>, DbError> {
        let rows = db::query(
            &self.pool,
            "(SELECT user_id, false FROM friendships \
              WHERE friend_id = $1 AND user_id > $2 AND since_tick <= $4 \
              ORDER BY user_id LIMIT $3) \
             UNION ALL \
             (SELECT user_id, true FROM ended_friendships \
              WHERE friend_id = $1 AND user_id > $2 AND since_tick <= $4 AND until_tick > $4 \
              ORDER BY user_id LIMIT $3) \
             ORDER BY 1 LIMIT $3",
            &[&author_id, &after, &limit, &tick],
        )
        .await?;
        Ok(rows
            .iter()
            .map(|row| Follower {
                user_id: row.get(0),
                ended: row.get(1),
            })
            .collect())
    }

    /// Which of `users` followed `author_id` as of its `tick` (to find a celebrity's online
    /// followers without listing all of them).
    pub async fn followers_among(
        &self,
        author_id: i64,
        users: &[i64],
        tick: i64,
    ) -> Result<Vec<i64>, DbError> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        db::query_column(
            &self.pool,
            "SELECT user_id FROM friendships \
             WHERE friend_id = $1 AND user_id = ANY($2) AND since_tick <= $3 \
             UNION ALL \
             SELECT user_id FROM ended_friendships \
             WHERE friend_id = $1 AND user_id = ANY($2) AND since_tick <= $3 \
               AND until_tick > $3",
            &[&author_id, &users, &tick],
        )
        .await
    }

    /// Forgets friendships that ended more than `older_than` ago: any post made during them
    /// has long been fanned out. Returns how many went.
    pub async fn prune_ended_friendships(&self, older_than: Duration) -> Result<u64, DbError> {
        db::execute(
            &self.pool,
            "DELETE FROM ended_friendships WHERE ended_at < now() - make_interval(secs => $1)",
            &[&older_than.as_secs_f64()],
        )
        .await
    }

    /// Followers, counted up to `cap` (enough to tell a celebrity without counting millions).
    pub async fn follower_count(&self, author_id: i64, cap: i64) -> Result<i64, DbError> {
        Ok(db::query_one(
            &self.pool,
            "SELECT count(*) FROM (SELECT 1 FROM friendships WHERE friend_id = $1 LIMIT $2) f",
            &[&author_id, &cap],
        )
        .await?
        .get(0))
    }
}
