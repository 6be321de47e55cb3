//! The transactional outbox relay: rows a service wrote in the same transaction as its change
//! are published to RabbitMQ and deleted only once the broker confirmed them.
//!
//! The relay takes a batch of committed rows with `FOR UPDATE SKIP LOCKED` (several relays may
//! run; each takes other rows), publishes them as persistent messages, waits for every confirm,
//! deletes them and commits. A crash in between leaves the rows to be published again:
//! delivery is at least once, so consumers must be idempotent. Writers wake the relay with a
//! `NOTIFY` after their transaction committed ([`OutboxWaker`]); the relay also polls, as a
//! safety net for notifications lost while its listening connection was down.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use serde::Serialize;
use tokio::sync::{Notify, watch};
use tokio_postgres::{AsyncMessage, Row};

use crate::amqp::{self, AmqpConfig, Delivery};
use crate::db::DbPool;

/// One service's outbox table.
pub trait Outbox: Send + Sync + 'static {
    type Message: Serialize + Send + Sync;

    /// The channel writers `NOTIFY` after inserting rows.
    fn notify_channel(&self) -> &str;

    /// Selects up to `$1` rows, oldest first, `FOR UPDATE SKIP LOCKED`.
    fn select_batch(&self) -> &str;

    /// Deletes the rows whose ids are in `$1` (a `bigint[]`).
    fn delete_batch(&self) -> &str;

    /// A row's id and the message it becomes.
    fn message(&self, row: &Row) -> anyhow::Result<(i64, Self::Message)>;
}

/// Where and how fast a relay publishes.
#[derive(Debug, Clone)]
pub struct Relay {
    /// Durable queue the messages go to.
    pub queue: String,
    /// Rows published per transaction.
    pub batch: i64,
    /// How often the outbox is looked at when no notification woke the relay.
    pub poll: Duration,
}

/// Relays `outbox` until `stop` turns true; an error (broker or database gone) ends it, for a
/// supervisor to restart.
pub async fn relay<O: Outbox>(
    outbox: Arc<O>,
    relay: Arc<Relay>,
    pool: DbPool,
    database_url: String,
    amqp_config: AmqpConfig,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let connection = amqp::connect(&amqp_config, &format!("relay {}", relay.queue)).await?;
    let channel = amqp::confirming_channel(&connection).await?;
    amqp::declare_queue(&channel, &amqp_config, &relay.queue).await?;
    let (_listener, wake) = listen(&database_url, outbox.notify_channel()).await?;
    loop {
        let published = relay_batch(&*outbox, &pool, &channel, &relay).await?;
        if published > 0 {
            metrics::counter!("outbox_published_total", "queue" => relay.queue.clone())
                .increment(published as u64);
            continue;
        }
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(relay.poll) => {}
            _ = stop.changed() => return Ok(()),
        }
    }
}

/// Publishes one batch and deletes it once confirmed, in one transaction: the rows stay locked
/// until the broker has them.
async fn relay_batch<O: Outbox>(
    outbox: &O,
    pool: &DbPool,
    channel: &lapin::Channel,
    relay: &Relay,
) -> anyhow::Result<usize> {
    let mut db = pool.get().await?;
    let tx = db.transaction().await?;
    let rows = tx.query(outbox.select_batch(), &[&relay.batch]).await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut ids = Vec::with_capacity(rows.len());
    let mut messages = Vec::with_capacity(rows.len());
    for row in &rows {
        let (id, message) = outbox.message(row)?;
        ids.push(id);
        messages.push(message);
    }
    amqp::publish_confirmed(channel, &relay.queue, &messages, Delivery::Durable).await?;
    tx.execute(outbox.delete_batch(), &[&ids]).await?;
    tx.commit().await?;
    Ok(ids.len())
}

/// Wakes a relay that LISTENs on `channel` after a write committed an outbox row.
///
/// The NOTIFY is sent by the application after the commit, on a connection of its own, never
/// inside the write's transaction: a transaction that notifies holds a lock on the whole
/// database from its pre-commit until it ends, including the wait for a synchronous replica,
/// so a NOTIFY in every post made every post commit wait for the one before it to reach a
/// replica. A notifying transaction of its own writes no WAL and so waits for no replica.
/// Wakes that come while a NOTIFY is on its way are folded into the next one: a burst of
/// writes costs a few notifications, not one each. A NOTIFY that fails is only a delay: the
/// relay also polls. Cheap to clone.
#[derive(Clone)]
pub struct OutboxWaker {
    inner: Arc<WakerInner>,
}

struct WakerInner {
    pool: DbPool,
    channel: String,
    pending: Notify,
}

impl OutboxWaker {
    pub fn new(pool: DbPool, channel: &str) -> Self {
        Self {
            inner: Arc::new(WakerInner {
                pool,
                channel: channel.to_owned(),
                pending: Notify::new(),
            }),
        }
    }

    /// Asks for a NOTIFY; call after the transaction that wrote outbox rows committed.
    pub fn wake(&self) {
        self.inner.pending.notify_one();
    }

    /// Sends the NOTIFYs asked for until `stop` turns true. Runs for the life of the server.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                () = self.inner.pending.notified() => {}
                _ = stop.wait_for(|stop| *stop) => return,
            }
            if let Err(error) = self.notify().await {
                metrics::counter!("outbox_wakes_failed_total").increment(1);
                tracing::debug!(%error, channel = %self.inner.channel,
                    "could not wake the relay; it finds the rows at its next poll");
            }
        }
    }

    async fn notify(&self) -> anyhow::Result<()> {
        let connection = self.inner.pool.get().await?;
        let statement = connection
            .prepare_cached("SELECT pg_notify($1, '')")
            .await?;
        connection
            .execute(&statement, &[&self.inner.channel])
            .await?;
        Ok(())
    }
}

/// A dedicated connection that LISTENs on `channel`: the Notify fires on each notification.
/// The client must be kept: dropping it closes the connection.
async fn listen(url: &str, channel: &str) -> anyhow::Result<(tokio_postgres::Client, Arc<Notify>)> {
    let (client, mut connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    let wake = Arc::new(Notify::new());
    let notifier = wake.clone();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(message)) = messages.next().await {
            if let AsyncMessage::Notification(_) = message {
                notifier.notify_one();
            }
        }
        // The connection ended; the relay still polls.
    });
    // Identifiers cannot be bound as parameters; channel names are ours, never a client's.
    client
        .batch_execute(&format!("LISTEN {}", quote_identifier(channel)))
        .await?;
    Ok((client, wake))
}

fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
