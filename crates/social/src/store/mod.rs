//! SQL, and nothing else. Statements are prepared once per connection (`prepare_cached`).
//!
//! Reads that tolerate a little lag take a [`Freshness`] and may run on a replica; everything
//! else (writes, transactions, reads that decide or fill a cache) runs on the primary. Writes
//! record the writer's WAL position for read-your-writes.

mod feed;
mod friends;
mod outbox;
mod posts;
mod users;

pub use friends::CURRENT_FOLLOWERS;
pub use outbox::{FEED_OUTBOX_CHANNEL, FeedEventKind};

use agora_platform::db::{self, DbError, DbPool};
use agora_platform::outbox::OutboxWaker;
use agora_platform::replicas::{Database, Freshness};
use time::Date;
use tokio_postgres::Row;

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

/// What a conditional change found.
pub enum Ownership {
    Changed,
    NotFound,
    NotOwner,
}

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
}
