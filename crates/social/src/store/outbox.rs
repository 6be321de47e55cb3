//! The feed outbox: what changed, written in the transaction that changes it, for the
//! feed worker's relay to publish.

use agora_platform::db::{self, DbError};

use super::Store;

/// What changed, as recorded in `feed_outbox.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedEventKind {
    PostCreated,
    PostUpdated,
    PostDeleted,
    FriendAdded,
    FriendRemoved,
}

impl FeedEventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FeedEventKind::PostCreated => "post_created",
            FeedEventKind::PostUpdated => "post_updated",
            FeedEventKind::PostDeleted => "post_deleted",
            FeedEventKind::FriendAdded => "friend_added",
            FeedEventKind::FriendRemoved => "friend_removed",
        }
    }

    pub fn parse(kind: &str) -> Option<Self> {
        Some(match kind {
            "post_created" => FeedEventKind::PostCreated,
            "post_updated" => FeedEventKind::PostUpdated,
            "post_deleted" => FeedEventKind::PostDeleted,
            "friend_added" => FeedEventKind::FriendAdded,
            "friend_removed" => FeedEventKind::FriendRemoved,
            _ => return None,
        })
    }
}

/// The channel the feed worker's relay LISTENs on.
pub const FEED_OUTBOX_CHANNEL: &str = "feed_outbox";

/// Records a change for the feed pipeline inside the transaction that makes it.
pub(super) async fn append_outbox(
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

impl Store {
    /// Rows waiting in `feed_outbox` (counted up to 100,000) and the oldest one's age in
    /// seconds.
    pub async fn outbox_backlog(&self) -> Result<(i64, f64), DbError> {
        let row = db::query_one(
            &self.pool,
            "SELECT (SELECT count(*) FROM (SELECT 1 FROM feed_outbox LIMIT 100000) o), \
                    coalesce(extract(epoch FROM now() - \
                        (SELECT created_at FROM feed_outbox ORDER BY id LIMIT 1)), 0)::float8",
            &[],
        )
        .await?;
        Ok((row.get(0), row.get(1)))
    }
}
