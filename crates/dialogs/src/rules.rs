//! The dialogs' rules: who may write to whom, what a message may hold, and finding the shard
//! server of a dialog, following the shard map when a logical shard moves.

use std::sync::Arc;
use std::time::Duration;

use agora_platform::identity::Directory;
use agora_platform::ids::{MessageId, UserId};
use agora_platform::session::Sessions;

use crate::config::DialogsConfig;
use crate::error::DialogsError;
use crate::shards::{DialogKey, LogicalShard, ShardServerPool, Shards};
pub use crate::store::Message;
use crate::store::{self, DialogSummary, Gate, Unread};
use crate::unread::{CAP, Counts, UnreadCounters};

/// The dialogs service. Cheap to clone.
#[derive(Clone)]
pub struct Dialogs {
    inner: Arc<State>,
}

struct State {
    shards: Shards,
    /// Whether a user exists.
    directory: Directory,
    sessions: Sessions,
    counters: UnreadCounters,
    max_text_chars: usize,
    move_wait: Duration,
}

impl axum::extract::FromRef<Dialogs> for Sessions {
    fn from_ref(dialogs: &Dialogs) -> Sessions {
        dialogs.inner.sessions.clone()
    }
}

/// A dialog of the caller's list: the other user and the last message.
#[derive(Debug, Clone)]
pub struct DialogEntry {
    pub with: UserId,
    pub last_message: Message,
}

impl Dialogs {
    pub fn new(
        shards: Shards,
        directory: Directory,
        sessions: Sessions,
        counters: UnreadCounters,
        config: &DialogsConfig,
    ) -> Self {
        Self {
            inner: Arc::new(State {
                shards,
                directory,
                sessions,
                counters,
                max_text_chars: config.max_text_chars as usize,
                move_wait: config.move_wait(),
            }),
        }
    }

    /// The sessions it checks tokens against.
    pub fn sessions(&self) -> &Sessions {
        &self.inner.sessions
    }

    pub fn shards(&self) -> &Shards {
        &self.inner.shards
    }

    /// Sends `text` from `from` to `to`; the message's id.
    pub async fn send(
        &self,
        from: UserId,
        to: UserId,
        text: &str,
    ) -> Result<MessageId, DialogsError> {
        let key = DialogKey::of(from, to)
            .ok_or_else(|| DialogsError::invalid("a message cannot be sent to yourself"))?;
        self.validate_text(text)?;
        if !self.inner.directory.user_exists(to).await? {
            return Err(DialogsError::NotFound("user not found"));
        }
        let shard = self.shard_of(key).await?;
        let started = tokio::time::Instant::now();
        let mut pause = Duration::from_millis(5);
        let mut retried = false;
        loop {
            let map = self.inner.shards.map();
            let server = self.server(&map, shard)?;
            let sent = store::send(&server.pool, shard, key, from, text)
                .await
                .map_err(|error| DialogsError::on_shard(&server.name, error))?;
            if let Some(id) = sent {
                // The fast path; the outbox row written with the message covers a failure.
                let unread = Unread {
                    message: id,
                    recipient: to,
                    sender: from,
                };
                if let Err(error) = self.inner.counters.add(&[unread]).await {
                    tracing::warn!(%error, "unread counter not updated; the outbox sweeper will");
                }
                if retried {
                    metrics::histogram!("dialog_send_moving_wait_seconds")
                        .record(started.elapsed().as_secs_f64());
                }
                return Ok(id);
            }
            retried = true;
            // The server does not hold the shard open: it moved, or is moving right now.
            let refreshed = self.inner.shards.refresh().await?;
            if refreshed.owner(shard) == map.owner(shard) {
                if started.elapsed() + pause > self.inner.move_wait {
                    return Err(DialogsError::Moving);
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(50));
            }
        }
    }

    /// Up to `limit` messages of the dialog of `reader` and `other`, newest first, older than
    /// `before` when given. Reading the newest page marks the dialog read.
    pub async fn list(
        &self,
        reader: UserId,
        other: UserId,
        before: Option<MessageId>,
        limit: i64,
    ) -> Result<Vec<Message>, DialogsError> {
        let key = DialogKey::of(reader, other)
            .ok_or_else(|| DialogsError::invalid("there is no dialog with yourself"))?;
        let shard = self.shard_of(key).await?;
        let mut map = self.inner.shards.map();
        for _ in 0..3 {
            let server = self.server(&map, shard)?;
            let page = store::messages(&server.pool, shard, key, reader, before, limit)
                .await
                .map_err(|error| DialogsError::on_shard(&server.name, error))?;
            let served = match page.gate {
                Gate::Open => true,
                // Closed: being moved (then this server still has every message, since no
                // write passes a closed gate) or moved away (then ask the new server).
                Gate::Closed => {
                    let refreshed = self.inner.shards.refresh().await?;
                    let same = refreshed.owner(shard) == map.owner(shard);
                    map = refreshed;
                    same
                }
            };
            if served {
                // A read that shows nothing new writes nothing.
                if before.is_none()
                    && let Some(newest) = page.messages.first()
                    && newest.id.0 > page.read_upto
                {
                    self.mark_read(&server, shard, key, reader, newest.id).await;
                }
                return Ok(page.messages);
            }
        }
        Err(DialogsError::Moving)
    }

    /// The caller's dialogs, most recent first: every shard server is asked.
    pub async fn dialogs_of(
        &self,
        user: UserId,
        limit: i64,
    ) -> Result<Vec<DialogEntry>, DialogsError> {
        let map = self.inner.shards.map();
        let servers = self
            .inner
            .shards
            .all_servers(&map)
            .map_err(DialogsError::Database)?;
        let answers = futures_util::future::join_all(servers.iter().map(|server| async move {
            store::dialogs_of(&server.pool, user, limit)
                .await
                .map_err(|error| DialogsError::on_shard(&server.name, error))
        }))
        .await;
        let mut summaries: Vec<DialogSummary> = Vec::new();
        for answer in answers {
            summaries.extend(answer?);
        }
        summaries.sort_by_key(|summary| std::cmp::Reverse(summary.last_message.id));
        summaries.dedup_by_key(|summary| summary.key);
        summaries.truncate(limit as usize);
        Ok(summaries
            .into_iter()
            .map(|summary| DialogEntry {
                with: if summary.key.low == user {
                    summary.key.high
                } else {
                    summary.key.low
                },
                last_message: summary.last_message,
            })
            .collect())
    }

    async fn mark_read(
        &self,
        server: &ShardServerPool,
        shard: LogicalShard,
        key: DialogKey,
        reader: UserId,
        upto: MessageId,
    ) {
        // A read that could not be recorded is recorded by the next one. The shard keeps the
        // read position durably (the counters are rebuilt from it); Redis follows.
        if let Err(error) = store::mark_read(&server.pool, shard, key, reader, upto).await {
            tracing::warn!(%error, server = %server.name, "could not mark a dialog read");
            return;
        }
        let other = if reader == key.low { key.high } else { key.low };
        if let Err(error) = self.inner.counters.mark_read(reader, other, upto.0).await {
            tracing::warn!(%error, "unread counter not cleared");
        }
    }

    /// The caller's unread counts.
    pub async fn unread(&self, user: UserId) -> Result<Counts, DialogsError> {
        Ok(self.inner.counters.counts(user).await?)
    }

    /// Applies the unread increments whose fast path failed (outbox rows older than 2 s), on
    /// every shard server, every second, until `stop` turns true.
    pub async fn sweep_unread(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stop.wait_for(|stop| *stop) => return,
            }
            let map = self.inner.shards.map();
            let Ok(servers) = self.inner.shards.all_servers_listed(&map) else {
                continue;
            };
            for server in servers {
                loop {
                    let counters = &self.inner.counters;
                    let swept =
                        store::sweep_unread(&server.pool, 2_000.0, 500, |batch| async move {
                            counters.add(&batch).await
                        })
                        .await;
                    match swept {
                        Ok(n) if n > 0 => {
                            metrics::counter!("dialog_unread_swept_total").increment(n as u64);
                            if n < 500 {
                                break;
                            }
                        }
                        Ok(_) => break,
                        Err(error) => {
                            tracing::warn!(%error, server = %server.name, "unread sweep failed; retrying in a second");
                            break;
                        }
                    }
                }
            }
        }
    }

    /// Rebuilds every unread counter from the shards (after Redis lost them); how many dialog
    /// sides were set.
    pub async fn repair_unread(&self) -> Result<u64, DialogsError> {
        let map = self.inner.shards.refresh().await?;
        let mut sides = 0;
        for server in self.inner.shards.all_servers(&map)? {
            let mut after = (0, 0);
            loop {
                let (positions, last) = store::read_positions(&server.pool, after, 500, CAP)
                    .await
                    .map_err(|error| DialogsError::on_shard(&server.name, error))?;
                self.inner.counters.reset(&positions).await?;
                sides += positions.len() as u64;
                match last {
                    Some(last) => after = last,
                    None => break,
                }
            }
        }
        Ok(sides)
    }

    fn validate_text(&self, text: &str) -> Result<(), DialogsError> {
        if text.trim().is_empty() {
            return Err(DialogsError::invalid("text must not be empty"));
        }
        if text.chars().count() > self.inner.max_text_chars {
            return Err(DialogsError::invalid(format!(
                "text must be at most {} characters",
                self.inner.max_text_chars
            )));
        }
        if text.contains('\0') {
            return Err(DialogsError::invalid(
                "text must not contain NUL characters",
            ));
        }
        Ok(())
    }

    async fn shard_of(&self, key: DialogKey) -> Result<LogicalShard, DialogsError> {
        let count = self.inner.shards.logical_count().await?;
        if count == 0 {
            return Err(DialogsError::NotSetUp);
        }
        Ok(key.logical_shard(count))
    }

    fn server(
        &self,
        map: &crate::shards::ShardMap,
        shard: LogicalShard,
    ) -> Result<ShardServerPool, DialogsError> {
        self.inner
            .shards
            .server(map, shard)
            .map_err(DialogsError::Database)
    }
}
