//! SQL, and nothing else. Statements are prepared once per connection (`prepare_cached`).
//!
//! Reads that tolerate a little lag take a [`Freshness`] and may run on a replica; everything
//! else (writes, transactions, reads that decide or fill a cache) runs on the primary. Writes
//! record the writer's WAL position for read-your-writes.

use std::time::Duration;

use agora_platform::db::{self, Connection, DbError, DbPool};
use agora_platform::outbox::OutboxWaker;
use agora_platform::replicas::{Database, Freshness};
use time::Date;
use tokio_postgres::Row;

use crate::domain::{NameSearch, NewUser, SEARCH_RESULT_CAP};
use crate::feed::FeedEventKind;

#[derive(Debug, Clone)]
pub struct UserRecord {
    pub id: i64,
    pub first_name: String,
    pub second_name: String,
    pub birthdate: Option<Date>,
    pub biography: Option<String>,
    pub city: Option<String>,
}

impl From<&Row> for UserRecord {
    fn from(row: &Row) -> Self {
        Self {
            id: row.get("id"),
            first_name: row.get("first_name"),
            second_name: row.get("second_name"),
            birthdate: row.get("birthdate"),
            biography: row.get("biography"),
            city: row.get("city"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct PostRecord {
    pub id: i64,
    pub author_id: i64,
    pub text: String,
    /// Bumped by every edit (0 for a post never edited).
    pub version: i32,
}

impl PostRecord {
    /// From a row of `id, author_id, text[, version]`.
    fn from_row(row: &Row) -> Self {
        Self {
            id: row.get(0),
            author_id: row.get(1),
            text: row.get(2),
            version: if row.len() > 3 { row.get(3) } else { 0 },
        }
    }
}

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
fn follow_clock_key(author_id: i64) -> (i32, i32) {
    ((author_id >> 32) as i32, author_id as i32)
}

/// What a conditional change found.
pub enum Ownership {
    Changed,
    NotFound,
    NotOwner,
}

const USER_COLUMNS: &str = "id, first_name, second_name, birthdate, biography, city";

/// The surname prefix `$1` and the first-name prefix `$2` as byte-wise ranges (see
/// `Store::search_users`).
const BOTH_PREFIXES: &str = "lower(second_name) ~>=~ lower($1) \
     AND lower(second_name) ~<~ (lower($1) || chr(1114111)) \
     AND lower(first_name) ~>=~ lower($2) \
     AND lower(first_name) ~<~ (lower($2) || chr(1114111))";

/// How search results are ordered (see `SocialConfig::search_order`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum SearchOrder {
    #[default]
    Name,
    Id,
}

#[derive(Clone)]
pub struct Store {
    db: Database,
    pool: DbPool,
    search_order: SearchOrder,
    /// Wakes the feed worker's relay after a write committed outbox rows; its `run` task must
    /// be running for that (the worker polls anyway).
    relay: OutboxWaker,
}

/// The channel the feed worker's relay LISTENs on.
pub const FEED_OUTBOX_CHANNEL: &str = "feed_outbox";

impl Store {
    pub fn new(db: Database) -> Self {
        Self {
            pool: db.primary().clone(),
            relay: OutboxWaker::new(db.primary().clone(), FEED_OUTBOX_CHANNEL),
            db,
            search_order: SearchOrder::Name,
        }
    }

    /// What sends the wakes of [`Store::commit`]: run it beside the server.
    pub fn relay_waker(&self) -> &OutboxWaker {
        &self.relay
    }

    /// Commits a write that added outbox rows, then wakes the relay: after the commit, never
    /// inside it (see `OutboxWaker`).
    async fn commit(&self, tx: deadpool_postgres::Transaction<'_>) -> Result<(), DbError> {
        db::commit(&self.pool, tx).await?;
        self.relay.wake();
        Ok(())
    }

    pub fn with_search_order(self, search_order: SearchOrder) -> Self {
        Self {
            search_order,
            ..self
        }
    }

    pub fn pool(&self) -> &DbPool {
        &self.pool
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    /// How fresh `reader`'s reads must be (see [`Database::freshness_for`]).
    pub async fn freshness_for(&self, reader: Option<i64>) -> Freshness {
        self.db.freshness_for(reader).await
    }

    pub async fn insert_user(&self, user: &NewUser, password_hash: &str) -> Result<i64, DbError> {
        let db = self.pool.get().await?;
        let statement = db
            .prepare_cached(
                "INSERT INTO users (first_name, second_name, birthdate, biography, city, password_hash) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            )
            .await?;
        let row = db
            .query_one(
                &statement,
                &[
                    &user.first_name,
                    &user.second_name,
                    &user.birthdate,
                    &user.biography,
                    &user.city,
                    &password_hash,
                ],
            )
            .await?;
        let id = row.get(0);
        self.db.written(&db, id).await;
        Ok(id)
    }

    pub async fn user(&self, id: i64, fresh: Freshness) -> Result<Option<UserRecord>, DbError> {
        self.db
            .read_found(fresh, |db| async move {
                let statement = db
                    .prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
                    .await?;
                Ok(db
                    .query_opt(&statement, &[&id])
                    .await?
                    .as_ref()
                    .map(UserRecord::from))
            })
            .await
    }

    /// The users among `ids` that exist, in no particular order.
    pub async fn users_by_ids(
        &self,
        ids: &[i64],
        fresh: Freshness,
    ) -> Result<Vec<UserRecord>, DbError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.db
            .read(fresh, |db| async move {
                let statement = db
                    .prepare_cached(&format!(
                        "SELECT {USER_COLUMNS} FROM users WHERE id = ANY($1)"
                    ))
                    .await?;
                Ok(db
                    .query(&statement, &[&ids])
                    .await?
                    .iter()
                    .map(UserRecord::from)
                    .collect())
            })
            .await
    }

    pub async fn password_hash(&self, id: i64) -> Result<Option<String>, DbError> {
        let db = self.pool.get().await?;
        let statement = db
            .prepare_cached("SELECT password_hash FROM users WHERE id = $1")
            .await?;
        Ok(db
            .query_opt(&statement, &[&id])
            .await?
            .map(|row| row.get(0)))
    }

    pub async fn search_users(
        &self,
        search: &NameSearch,
        fresh: Freshness,
    ) -> Result<Vec<UserRecord>, DbError> {
        self.db
            .read(fresh, |db| async move {
                self.search_users_on(&db, search).await
            })
            .await
    }

    async fn search_users_on(
        &self,
        db: &Connection,
        search: &NameSearch,
    ) -> Result<Vec<UserRecord>, DbError> {
        // lower() of the input here, not in Rust, so both sides use PostgreSQL's case mapping.
        //
        // A prefix is a byte-wise range (`~>=~`, `~<~`, the operators of the indexes'
        // text_pattern_ops): `prefix <= name < prefix || U+10FFFF`, the highest code point. That
        // is exactly "name starts with prefix" (but for a name holding U+10FFFF right after the
        // prefix), with `%` and `_` literal, and it is an index condition even in a generic plan,
        // where the prefix is an unknown parameter. `LIKE $1` is not, and PostgreSQL switches a
        // prepared statement to its generic plan after five runs, which then seq-scans a million
        // rows (docs/benchmarks/user-search.md ran into that).
        //
        // Results come in the index's order (surname, then first name, byte-wise), so the scan
        // stops at the 100th row instead of reading and sorting every match of a short prefix.
        // A LIKE beside the range would be redundant, and PostgreSQL would count its selectivity
        // twice, estimate one matching row, and sort after all. A search without a surname
        // prefix is served by the index that leads with the first name.
        let rows = match self.search_order {
            SearchOrder::Name if search.second_name_prefix.is_empty() => {
                let statement = db
                    .prepare_cached(&format!(
                        "SELECT {USER_COLUMNS} FROM users \
                         WHERE lower(first_name) ~>=~ lower($1) \
                           AND lower(first_name) ~<~ (lower($1) || chr(1114111)) \
                         ORDER BY lower(first_name) USING ~<~, lower(second_name) USING ~<~ \
                         LIMIT $2"
                    ))
                    .await?;
                db.query(&statement, &[&search.first_name_prefix, &SEARCH_RESULT_CAP])
                    .await?
            }
            SearchOrder::Name => {
                let statement = db
                    .prepare_cached(&format!(
                        "SELECT {USER_COLUMNS} FROM users WHERE {BOTH_PREFIXES} \
                         ORDER BY lower(second_name) USING ~<~, lower(first_name) USING ~<~ \
                         LIMIT $3"
                    ))
                    .await?;
                db.query(
                    &statement,
                    &[
                        &search.second_name_prefix,
                        &search.first_name_prefix,
                        &SEARCH_RESULT_CAP,
                    ],
                )
                .await?
            }
            // The statement as it was before index order, kept for the search study.
            SearchOrder::Id => {
                let statement = db
                    .prepare_cached(&format!(
                        "SELECT {USER_COLUMNS} FROM users WHERE {BOTH_PREFIXES} \
                           AND lower(second_name) LIKE lower($3) AND lower(first_name) LIKE lower($4) \
                         ORDER BY id LIMIT $5"
                    ))
                    .await?;
                db.query(
                    &statement,
                    &[
                        &search.second_name_prefix,
                        &search.first_name_prefix,
                        &search.second_name_pattern,
                        &search.first_name_pattern,
                        &SEARCH_RESULT_CAP,
                    ],
                )
                .await?
            }
        };
        Ok(rows.iter().map(UserRecord::from).collect())
    }

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

    pub async fn user_exists(&self, id: i64) -> Result<bool, DbError> {
        let db = self.pool.get().await?;
        let statement = db
            .prepare_cached("SELECT 1 FROM users WHERE id = $1")
            .await?;
        Ok(db.query_opt(&statement, &[&id]).await?.is_some())
    }

    pub async fn create_post(&self, author_id: i64, text: &str) -> Result<i64, DbError> {
        let mut db = self.pool.get().await?;
        let tx = db.transaction().await?;
        // The shared lock orders this post against the author's friendship changes (not
        // against other posts); the outbox row then reads the tick in a later statement, so
        // it sees every change that committed before the lock was granted.
        let (high, low) = follow_clock_key(author_id);
        let statement = tx
            .prepare_cached(
                "INSERT INTO posts (author_id, text) \
                 SELECT $1, $2 FROM pg_advisory_xact_lock_shared($3, $4) RETURNING id",
            )
            .await?;
        let id: i64 = tx
            .query_one(&statement, &[&author_id, &text, &high, &low])
            .await?
            .get(0);
        let statement = tx
            .prepare_cached(
                "INSERT INTO feed_outbox (kind, actor_id, subject_id, tick) \
                 VALUES ('post_created', $1, $2, \
                         coalesce((SELECT tick FROM follow_clocks WHERE author_id = $1), 0))",
            )
            .await?;
        tx.execute(&statement, &[&author_id, &id]).await?;
        self.commit(tx).await?;
        self.db.written(&db, author_id).await;
        Ok(id)
    }

    pub async fn post(&self, id: i64, fresh: Freshness) -> Result<Option<PostRecord>, DbError> {
        self.db
            .read_found(fresh, |db| async move {
                let statement = db
                    .prepare_cached("SELECT id, author_id, text FROM posts WHERE id = $1")
                    .await?;
                Ok(db
                    .query_opt(&statement, &[&id])
                    .await?
                    .as_ref()
                    .map(PostRecord::from_row))
            })
            .await
    }

    pub async fn update_post(
        &self,
        author_id: i64,
        id: i64,
        text: &str,
    ) -> Result<(Ownership, i32), DbError> {
        let mut db = self.pool.get().await?;
        let tx = db.transaction().await?;
        let statement = tx
            .prepare_cached(
                "UPDATE posts SET text = $3, updated_at = now(), version = version + 1 \
                 WHERE id = $1 AND author_id = $2 RETURNING version",
            )
            .await?;
        let version: Option<i32> = tx
            .query_opt(&statement, &[&id, &author_id, &text])
            .await?
            .map(|row| row.get(0));
        if let Some(version) = version {
            let statement = tx
                .prepare_cached(
                    "INSERT INTO feed_outbox (kind, actor_id, subject_id, post_version) \
                     VALUES ('post_updated', $1, $2, $3)",
                )
                .await?;
            tx.execute(&statement, &[&author_id, &id, &version]).await?;
        }
        self.commit(tx).await?;
        if version.is_some() {
            self.db.written(&db, author_id).await;
        }
        let ownership = self
            .ownership(&db, u64::from(version.is_some()), id)
            .await?;
        Ok((ownership, version.unwrap_or(0)))
    }

    pub async fn delete_post(&self, author_id: i64, id: i64) -> Result<Ownership, DbError> {
        let mut db = self.pool.get().await?;
        let tx = db.transaction().await?;
        let statement = tx
            .prepare_cached("DELETE FROM posts WHERE id = $1 AND author_id = $2")
            .await?;
        let changed = tx.execute(&statement, &[&id, &author_id]).await?;
        if changed > 0 {
            append_outbox(&tx, FeedEventKind::PostDeleted, author_id, id, None).await?;
        }
        self.commit(tx).await?;
        if changed > 0 {
            self.db.written(&db, author_id).await;
        }
        self.ownership(&db, changed, id).await
    }

    /// Tells "no such post" from "someone else's post" after a conditional change hit no row.
    async fn ownership(
        &self,
        db: &Connection,
        changed: u64,
        id: i64,
    ) -> Result<Ownership, DbError> {
        if changed > 0 {
            return Ok(Ownership::Changed);
        }
        let statement = db
            .prepare_cached("SELECT 1 FROM posts WHERE id = $1")
            .await?;
        Ok(if db.query_opt(&statement, &[&id]).await?.is_some() {
            Ownership::NotOwner
        } else {
            Ownership::NotFound
        })
    }
}

/// Records a change for the feed pipeline inside the transaction that makes it.
async fn append_outbox(
    tx: &deadpool_postgres::Transaction<'_>,
    kind: FeedEventKind,
    actor_id: i64,
    subject_id: i64,
    tick: Option<i64>,
) -> Result<(), DbError> {
    let statement = tx
        .prepare_cached(
            "INSERT INTO feed_outbox (kind, actor_id, subject_id, tick) VALUES ($1, $2, $3, $4)",
        )
        .await?;
    tx.execute(&statement, &[&kind.as_str(), &actor_id, &subject_id, &tick])
        .await?;
    Ok(())
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
    /// Rows waiting in `feed_outbox` (counted up to 100,000) and the oldest one's age in
    /// seconds.
    pub async fn outbox_backlog(&self) -> Result<(i64, f64), DbError> {
        let db = self.pool.get().await?;
        let statement = db
            .prepare_cached(
                "SELECT (SELECT count(*) FROM (SELECT 1 FROM feed_outbox LIMIT 100000) o), \
                        coalesce(extract(epoch FROM now() - (SELECT created_at FROM feed_outbox ORDER BY id LIMIT 1)), 0)::float8",
            )
            .await?;
        let row = db.query_one(&statement, &[]).await?;
        Ok((row.get(0), row.get(1)))
    }
}

/// Feed queries. Each friend contributes at most the rows a page can use (LATERAL ... LIMIT),
/// so a friend with a million posts costs no more than one with a thousand.
impl Store {
    /// The newest `limit` post ids of the user's friends, leaving out `excluded` authors (the
    /// celebrities, whose posts are merged at read time instead).
    pub async fn feed_ids(
        &self,
        user_id: i64,
        limit: i64,
        excluded: &[i64],
        fresh: Freshness,
    ) -> Result<Vec<i64>, DbError> {
        self.db
            .read(fresh, |db| async move {
                let statement = db
                    .prepare_cached(
                        "SELECT p.id FROM friendships f CROSS JOIN LATERAL \
                           (SELECT id FROM posts WHERE author_id = f.friend_id ORDER BY id DESC LIMIT $2) p \
                         WHERE f.user_id = $1 AND f.friend_id <> ALL($3) ORDER BY p.id DESC LIMIT $2",
                    )
                    .await?;
                let rows = db.query(&statement, &[&user_id, &limit, &excluded]).await?;
                Ok(rows.iter().map(|row| row.get(0)).collect())
            })
            .await
    }

    /// Friends' posts with ids below `before`, newest first, skipping `skip`.
    pub async fn feed_posts_before(
        &self,
        user_id: i64,
        before: i64,
        skip: i64,
        limit: i64,
        fresh: Freshness,
    ) -> Result<Vec<PostRecord>, DbError> {
        self.db
            .read(fresh, |db| async move {
                let statement = db
                    .prepare_cached(
                        "SELECT p.id, p.author_id, p.text FROM friendships f CROSS JOIN LATERAL \
                           (SELECT id, author_id, text FROM posts \
                            WHERE author_id = f.friend_id AND id < $2 ORDER BY id DESC LIMIT $3::bigint + $4::bigint) p \
                         WHERE f.user_id = $1 ORDER BY p.id DESC OFFSET $3 LIMIT $4",
                    )
                    .await?;
                let rows = db
                    .query(&statement, &[&user_id, &before, &skip, &limit])
                    .await?;
                Ok(rows.iter().map(PostRecord::from_row).collect())
            })
            .await
    }

    /// An author's posts with ids below `before`, newest first (`posts_author_id_idx`).
    pub async fn author_posts_before(
        &self,
        author_id: i64,
        before: i64,
        limit: i64,
        fresh: Freshness,
    ) -> Result<Vec<PostRecord>, DbError> {
        self.db
            .read(fresh, |db| async move {
                let statement = db
                    .prepare_cached(
                        "SELECT id, author_id, text FROM posts \
                         WHERE author_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
                    )
                    .await?;
                let rows = db.query(&statement, &[&author_id, &before, &limit]).await?;
                Ok(rows.iter().map(PostRecord::from_row).collect())
            })
            .await
    }

    pub async fn posts_by_ids(&self, ids: &[i64]) -> Result<Vec<PostRecord>, DbError> {
        let db = self.pool.get().await?;
        let statement = db
            .prepare_cached("SELECT id, author_id, text FROM posts WHERE id = ANY($1)")
            .await?;
        let rows = db.query(&statement, &[&ids]).await?;
        Ok(rows.iter().map(PostRecord::from_row).collect())
    }

    /// An author's newest `limit` post ids.
    pub async fn author_post_ids(&self, author_id: i64, limit: i64) -> Result<Vec<i64>, DbError> {
        let db = self.pool.get().await?;
        let statement = db
            .prepare_cached("SELECT id FROM posts WHERE author_id = $1 ORDER BY id DESC LIMIT $2")
            .await?;
        let rows = db.query(&statement, &[&author_id, &limit]).await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
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
        let db = self.pool.get().await?;
        let statement = db
            .prepare_cached(
                "SELECT friend_id FROM friendships WHERE user_id = $1 AND friend_id = ANY($2)",
            )
            .await?;
        let rows = db.query(&statement, &[&user_id, &candidates]).await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
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
        let db = self.pool.get().await?;
        let statement = db
            .prepare_cached(
                "(SELECT user_id, false FROM friendships \
                  WHERE friend_id = $1 AND user_id > $2 AND since_tick <= $4 \
                  ORDER BY user_id LIMIT $3) \
                 UNION ALL \
                 (SELECT user_id, true FROM ended_friendships \
                  WHERE friend_id = $1 AND user_id > $2 AND since_tick <= $4 AND until_tick > $4 \
                  ORDER BY user_id LIMIT $3) \
                 ORDER BY 1 LIMIT $3",
            )
            .await?;
        let rows = db
            .query(&statement, &[&author_id, &after, &limit, &tick])
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
        let db = self.pool.get().await?;
        let statement = db
            .prepare_cached(
                "SELECT user_id FROM friendships \
                 WHERE friend_id = $1 AND user_id = ANY($2) AND since_tick <= $3 \
                 UNION ALL \
                 SELECT user_id FROM ended_friendships \
                 WHERE friend_id = $1 AND user_id = ANY($2) AND since_tick <= $3 AND until_tick > $3",
            )
            .await?;
        let rows = db.query(&statement, &[&author_id, &users, &tick]).await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    /// Forgets friendships that ended more than `older_than` ago: any post made during them
    /// has long been fanned out. Returns how many went.
    pub async fn prune_ended_friendships(&self, older_than: Duration) -> Result<u64, DbError> {
        let db = self.pool.get().await?;
        let statement = db
            .prepare_cached(
                "DELETE FROM ended_friendships WHERE ended_at < now() - make_interval(secs => $1)",
            )
            .await?;
        Ok(db.execute(&statement, &[&older_than.as_secs_f64()]).await?)
    }

    /// Ids of friends' posts newer than `since`: the newest `limit` of them, oldest first
    /// (what a reconnecting live client missed; bodies are fetched in pages).
    pub async fn feed_ids_after(
        &self,
        user_id: i64,
        since: i64,
        limit: i64,
    ) -> Result<Vec<i64>, DbError> {
        let db = self.pool.get().await?;
        let statement = db
            .prepare_cached(
                "SELECT p.id FROM friendships f CROSS JOIN LATERAL \
                   (SELECT id FROM posts WHERE author_id = f.friend_id AND id > $2 \
                    ORDER BY id DESC LIMIT $3) p \
                 WHERE f.user_id = $1 ORDER BY p.id DESC LIMIT $3",
            )
            .await?;
        let rows = db.query(&statement, &[&user_id, &since, &limit]).await?;
        let mut ids: Vec<i64> = rows.iter().map(|row| row.get(0)).collect();
        ids.reverse();
        Ok(ids)
    }

    /// Followers, counted up to `cap` (enough to tell a celebrity without counting millions).
    pub async fn follower_count(&self, author_id: i64, cap: i64) -> Result<i64, DbError> {
        let db = self.pool.get().await?;
        let statement = db
            .prepare_cached(
                "SELECT count(*) FROM (SELECT 1 FROM friendships WHERE friend_id = $1 LIMIT $2) f",
            )
            .await?;
        Ok(db.query_one(&statement, &[&author_id, &cap]).await?.get(0))
    }
}
