//! SQL on one shard server. Every write passes the server's gate for its logical shard: a
//! write to a server that does not (or no longer) hold the shard changes nothing and says so.

use agora_platform::db::{DbError, DbPool};
use agora_platform::ids::{MessageId, UserId};

use crate::shards::{DialogKey, LogicalShard};

/// A stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: MessageId,
    pub from: UserId,
    pub text: String,
}

/// A dialog as its summary row has it.
#[derive(Debug, Clone)]
pub struct DialogSummary {
    pub key: DialogKey,
    pub last_message: Message,
}

/// Whether the server holds the logical shard open for writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Open,
    /// Closed or absent: the shard is being moved away, or lives elsewhere.
    Closed,
}

/// Stores a message, its unread-counter increment (in the outbox) and the dialog's summary in
/// one statement; `None` when the gate is closed (nothing was written). The gate row is locked
/// `FOR SHARE` until the statement commits, so closing the gate waits for every write in
/// flight.
pub async fn send(
    pool: &DbPool,
    shard: LogicalShard,
    key: DialogKey,
    from: UserId,
    text: &str,
) -> Result<Option<MessageId>, DbError> {
    let to = if from == key.low { key.high } else { key.low };
    let db = pool.get().await?;
    let statement = db
        .prepare_cached(
            "WITH gate AS ( \
                 SELECT logical_shard FROM shard_gates WHERE logical_shard = $1 AND open FOR SHARE \
             ), message AS ( \
                 INSERT INTO messages (dialog_low, dialog_high, id, logical_shard, sender, text) \
                 SELECT $2, $3, next_id($1), $1, $4, $5 FROM gate \
                 RETURNING id \
             ), unread AS ( \
                 INSERT INTO unread_outbox (message_id, recipient, sender) \
                 SELECT id, $6, $4 FROM message \
             ), summary AS ( \
                 INSERT INTO dialogs (dialog_low, dialog_high, logical_shard, last_message_id) \
                 SELECT $2, $3, $1, id FROM message \
                 ON CONFLICT (dialog_low, dialog_high) DO UPDATE \
                 SET last_message_id = GREATEST(dialogs.last_message_id, EXCLUDED.last_message_id), \
                     touched_at = clock_timestamp() \
             ) \
             SELECT id FROM message",
        )
        .await?;
    let row = db
        .query_opt(
            &statement,
            &[&shard.0, &key.low.0, &key.high.0, &from.0, &text, &to.0],
        )
        .await?;
    Ok(row.map(|row| MessageId(row.get(0))))
}

/// A page of a dialog as [`messages`] reads it.
#[derive(Debug)]
pub struct Page {
    /// The gate as it was when the page was read.
    pub gate: Gate,
    pub messages: Vec<Message>,
    /// What the reader had read up to.
    pub read_upto: i64,
}

/// Up to `limit` messages of a dialog older than `before`, newest first, with the gate and
/// what `reader` had read up to.
pub async fn messages(
    pool: &DbPool,
    shard: LogicalShard,
    key: DialogKey,
    reader: UserId,
    before: Option<MessageId>,
    limit: i64,
) -> Result<Page, DbError> {
    let db = pool.get().await?;
    let statement = db
        .prepare_cached(
            "SELECT gate.open, m.id, m.sender, m.text, gate.read_upto \
             FROM (SELECT coalesce((SELECT open FROM shard_gates WHERE logical_shard = $1), false) \
                   AS open, \
                   coalesce((SELECT CASE WHEN dialog_low = $6 THEN low_read_upto \
                                         ELSE high_read_upto END \
                             FROM dialogs WHERE dialog_low = $2 AND dialog_high = $3), 0) \
                   AS read_upto) AS gate \
             LEFT JOIN LATERAL ( \
                 SELECT id, sender, text FROM messages \
                 WHERE dialog_low = $2 AND dialog_high = $3 AND id < $4 \
                 ORDER BY id DESC LIMIT $5 \
             ) AS m ON true",
        )
        .await?;
    let before = before.map_or(i64::MAX, |id| id.0);
    let rows = db
        .query(
            &statement,
            &[
                &shard.0,
                &key.low.0,
                &key.high.0,
                &before,
                &limit,
                &reader.0,
            ],
        )
        .await?;
    let read_upto = rows.first().map_or(0, |row| row.get::<_, i64>(4));
    let gate = match rows.first().map(|row| row.get::<_, bool>(0)) {
        Some(true) => Gate::Open,
        _ => Gate::Closed,
    };
    let messages = rows
        .iter()
        .filter_map(|row| {
            Some(Message {
                id: MessageId(row.get::<_, Option<i64>>(1)?),
                from: UserId(row.get(2)),
                text: row.get(3),
            })
        })
        .collect();
    Ok(Page {
        gate,
        messages,
        read_upto,
    })
}

/// The dialogs of `user` on this server, most recent first, with their last message.
pub async fn dialogs_of(
    pool: &DbPool,
    user: UserId,
    limit: i64,
) -> Result<Vec<DialogSummary>, DbError> {
    let db = pool.get().await?;
    // Only rows of shards this server holds open or frozen for a move count; after a move the
    // old server's copies are deleted, and until then its gate is closed: skipped here, the
    // new server answers for them.
    let statement = db
        .prepare_cached(
            "SELECT d.dialog_low, d.dialog_high, m.id, m.sender, m.text \
             FROM ( \
                 (SELECT * FROM dialogs WHERE dialog_low = $1 \
                  ORDER BY last_message_id DESC LIMIT $2) \
                 UNION ALL \
                 (SELECT * FROM dialogs WHERE dialog_high = $1 \
                  ORDER BY last_message_id DESC LIMIT $2) \
             ) AS d \
             JOIN shard_gates g ON g.logical_shard = d.logical_shard AND g.open \
             JOIN messages m ON m.dialog_low = d.dialog_low AND m.dialog_high = d.dialog_high \
                            AND m.id = d.last_message_id \
             ORDER BY d.last_message_id DESC LIMIT $2",
        )
        .await?;
    let rows = db.query(&statement, &[&user.0, &limit]).await?;
    Ok(rows
        .iter()
        .map(|row| DialogSummary {
            key: DialogKey {
                low: UserId(row.get(0)),
                high: UserId(row.get(1)),
            },
            last_message: Message {
                id: MessageId(row.get(2)),
                from: UserId(row.get(3)),
                text: row.get(4),
            },
        })
        .collect())
}

/// Records that `reader` has read the dialog up to `upto`; `false` when the gate is closed.
pub async fn mark_read(
    pool: &DbPool,
    shard: LogicalShard,
    key: DialogKey,
    reader: UserId,
    upto: MessageId,
) -> Result<bool, DbError> {
    let db = pool.get().await?;
    let statement = db
        .prepare_cached(
            "WITH gate AS ( \
                 SELECT 1 FROM shard_gates WHERE logical_shard = $1 AND open FOR SHARE \
             ) \
             UPDATE dialogs SET \
                 low_read_upto = CASE WHEN $4 = dialog_low \
                     THEN GREATEST(low_read_upto, $5) ELSE low_read_upto END, \
                 high_read_upto = CASE WHEN $4 = dialog_high \
                     THEN GREATEST(high_read_upto, $5) ELSE high_read_upto END, \
                 touched_at = clock_timestamp() \
             WHERE dialog_low = $2 AND dialog_high = $3 AND EXISTS (SELECT 1 FROM gate) \
             RETURNING 1",
        )
        .await?;
    let rows = db
        .query(
            &statement,
            &[&shard.0, &key.low.0, &key.high.0, &reader.0, &upto.0],
        )
        .await?;
    // No row: a closed gate, or a dialog without messages (nothing to mark).
    Ok(!rows.is_empty())
}

/// An unread-counter increment waiting in the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unread {
    pub message: MessageId,
    pub recipient: UserId,
    pub sender: UserId,
}

/// Takes up to `limit` outbox rows older than `min_age_ms`, hands them to `apply`, and deletes
/// them if it succeeds, in one transaction (rows stay locked meanwhile; other sweepers skip
/// them). How many were applied.
pub async fn sweep_unread<F, Fut, E>(
    pool: &DbPool,
    min_age_ms: f64,
    limit: i64,
    apply: F,
) -> Result<usize, SweepError<E>>
where
    F: FnOnce(Vec<Unread>) -> Fut,
    Fut: std::future::Future<Output = Result<(), E>>,
{
    let mut db = pool
        .get()
        .await
        .map_err(|error| SweepError::Database(error.into()))?;
    let tx = db.transaction().await.map_err(SweepError::db)?;
    let rows = tx
        .query(
            "SELECT message_id, recipient, sender FROM unread_outbox \
             WHERE created_at < clock_timestamp() - make_interval(secs => $1::float8 / 1000) \
             ORDER BY message_id LIMIT $2 FOR UPDATE SKIP LOCKED",
            &[&min_age_ms, &limit],
        )
        .await
        .map_err(SweepError::db)?;
    if rows.is_empty() {
        return Ok(0);
    }
    let batch: Vec<Unread> = rows
        .iter()
        .map(|row| Unread {
            message: MessageId(row.get(0)),
            recipient: UserId(row.get(1)),
            sender: UserId(row.get(2)),
        })
        .collect();
    let ids: Vec<i64> = batch.iter().map(|unread| unread.message.0).collect();
    apply(batch).await.map_err(SweepError::Apply)?;
    tx.execute(
        "DELETE FROM unread_outbox WHERE message_id = ANY($1)",
        &[&ids],
    )
    .await
    .map_err(SweepError::db)?;
    tx.commit().await.map_err(SweepError::db)?;
    Ok(ids.len())
}

#[derive(Debug, thiserror::Error)]
pub enum SweepError<E> {
    #[error(transparent)]
    Database(DbError),
    #[error("applying: {0}")]
    Apply(E),
}

impl<E> SweepError<E> {
    fn db(error: tokio_postgres::Error) -> Self {
        SweepError::Database(error.into())
    }
}

/// One side of a dialog as the counters need it: who reads, from whom, read up to where.
#[derive(Debug, Clone)]
pub struct ReadPosition {
    pub reader: UserId,
    pub other: UserId,
    pub read_upto: i64,
    /// The newest unread message ids (at most the counter's cap), newest first.
    pub unread: Vec<i64>,
}

/// Every dialog side on this server with its unread messages, a page of dialogs at a time
/// (after `after`, in key order): what the counters are rebuilt from.
pub async fn read_positions(
    pool: &DbPool,
    after: (i64, i64),
    dialogs: i64,
    cap: i64,
) -> Result<(Vec<ReadPosition>, Option<(i64, i64)>), DbError> {
    let db = pool.get().await?;
    let rows = db
        .query(
            "SELECT d.dialog_low, d.dialog_high, d.low_read_upto, d.high_read_upto, \
                    ARRAY(SELECT id FROM messages m WHERE m.dialog_low = d.dialog_low \
                          AND m.dialog_high = d.dialog_high AND m.sender = d.dialog_high \
                          AND m.id > d.low_read_upto ORDER BY id DESC LIMIT $3), \
                    ARRAY(SELECT id FROM messages m WHERE m.dialog_low = d.dialog_low \
                          AND m.dialog_high = d.dialog_high AND m.sender = d.dialog_low \
                          AND m.id > d.high_read_upto ORDER BY id DESC LIMIT $3) \
             FROM dialogs d JOIN shard_gates g ON g.logical_shard = d.logical_shard AND g.open \
             WHERE (d.dialog_low, d.dialog_high) > ($1, $2) \
             ORDER BY d.dialog_low, d.dialog_high LIMIT $4",
            &[&after.0, &after.1, &cap, &dialogs],
        )
        .await?;
    let last = rows.last().map(|row| (row.get(0), row.get(1)));
    let mut positions = Vec::with_capacity(rows.len() * 2);
    for row in &rows {
        let (low, high): (i64, i64) = (row.get(0), row.get(1));
        positions.push(ReadPosition {
            reader: UserId(low),
            other: UserId(high),
            read_upto: row.get(2),
            unread: row.get(4),
        });
        positions.push(ReadPosition {
            reader: UserId(high),
            other: UserId(low),
            read_upto: row.get(3),
            unread: row.get(5),
        });
    }
    Ok((positions, last))
}
