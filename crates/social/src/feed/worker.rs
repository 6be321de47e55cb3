//! `agora worker`: moves feed changes from PostgreSQL to Redis through RabbitMQ.
//!
//! - The **relay** takes committed `feed_outbox` rows (woken by NOTIFY, polling every
//!   `relay_poll_ms` as a safety net), publishes them as persistent messages with publisher confirms, and
//!   deletes them only once the broker has confirmed every one. A crash in between republishes
//!   them: delivery is at least once, and the handlers are idempotent.
//! - The **events lane** (`<namespace>.feed.events`) applies each event. A post's first batch
//!   of followers is done inline; the rest go to the **bulk lane** (`<namespace>.feed.fanout`),
//!   one task per batch, so an author with thousands of followers never delays the ordinary
//!   posts queued behind. Celebrities are never fanned out at all.
//! - Messages are acknowledged only after their Redis work is done. When Redis or PostgreSQL
//!   fails, the message goes back to the queue after a pause and is retried.
//!
//! Each part reconnects by itself, so the worker rides out broker, Redis and database restarts.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use agora_platform::amqp::{self, AmqpConfig};
use agora_platform::config::DatabaseConfig;
use agora_platform::db::{self, DbPool};
use anyhow::Context;
use clap::Args;
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{Notify, watch};
use tokio_postgres::AsyncMessage;

use super::FeedConfig;
use super::FeedEventKind;
use super::cache::FeedCache;
use super::fanout::{FanOut, FanoutTask, FeedEvent};
use crate::live::{LiveDelivery, Presence, instance_queue};
use crate::store::Store;
use crate::supervise::supervise;

#[derive(Debug, Clone, Args)]
pub struct WorkerConfig {
    #[command(flatten)]
    pub database: DatabaseConfig,

    #[command(flatten)]
    pub feed: FeedConfig,

    #[command(flatten)]
    pub amqp: AmqpConfig,

    /// Outbox rows published per transaction.
    #[arg(long = "relay-batch", env = "AGORA_RELAY_BATCH", default_value_t = 200,
          value_parser = clap::value_parser!(i64).range(1..=10_000))]
    pub relay_batch: i64,

    /// How often the relay looks at the outbox when no NOTIFY woke it, in milliseconds: a
    /// safety net for notifications lost while its listening connection was down.
    #[arg(long = "relay-poll-ms", env = "AGORA_RELAY_POLL_MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(10..))]
    pub relay_poll_ms: u64,

    /// Unacknowledged messages a lane holds at once.
    #[arg(long = "worker-prefetch", env = "AGORA_WORKER_PREFETCH", default_value_t = 64,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub prefetch: u16,
}

struct Queues {
    events: String,
    fanout: String,
}

impl Queues {
    fn of(config: &FeedConfig) -> Self {
        Self {
            events: format!("{}.feed.events", config.namespace),
            fanout: format!("{}.feed.fanout", config.namespace),
        }
    }
}

/// Runs the relay and both lanes until `shutdown` resolves.
pub async fn run(
    config: WorkerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let pool = db::connect_pool(&config.database, "agora-worker")?;
    let cache = FeedCache::from_config(&config.feed)?;
    let presence = Presence::new(cache.redis().clone(), &config.feed.key_prefix());
    let fanout = FanOut::new(
        Store::new(pool.clone()),
        cache,
        presence,
        config.feed.fanout_batch,
        config.feed.celebrity_followers,
    );
    let config = Arc::new(config);
    let (stop_tx, stop) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(supervise("relay", stop.clone(), {
        let (config, pool) = (config.clone(), pool.clone());
        move |stop| relay(config.clone(), pool.clone(), stop)
    }));
    for lane in [Lane::Events, Lane::Fanout] {
        tasks.spawn(supervise(lane.name(), stop.clone(), {
            let (config, fanout) = (config.clone(), fanout.clone());
            move |stop| consume(config.clone(), fanout.clone(), lane, stop)
        }));
    }
    tracing::info!(namespace = %config.feed.namespace, "feed worker running");
    while tasks.join_next().await.is_some() {}
    Ok(())
}

async fn declare(channel: &Channel, config: &WorkerConfig, queue: &str) -> anyhow::Result<()> {
    let mut arguments = FieldTable::default();
    if config.amqp.queue_expires_secs > 0 {
        arguments.insert(
            "x-expires".into(),
            AMQPValue::LongUInt((config.amqp.queue_expires_secs * 1000) as u32),
        );
    }
    channel
        .queue_declare(queue.into(), QueueDeclareOptions::durable(), arguments)
        .await
        .with_context(|| format!("declaring {queue}"))?;
    Ok(())
}

/// Publishes persistent messages to `queue` and waits until the broker confirms them all.
async fn publish_confirmed<T: Serialize>(
    channel: &Channel,
    queue: &str,
    messages: &[T],
) -> anyhow::Result<()> {
    let mut confirms = Vec::with_capacity(messages.len());
    for message in messages {
        let payload = serde_json::to_vec(message)?;
        confirms.push(
            channel
                .basic_publish(
                    "".into(),
                    queue.into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    &payload,
                    BasicProperties::default()
                        .with_delivery_mode(2)
                        .with_content_type("application/json".into()),
                )
                .await?,
        );
    }
    await_confirms(confirms, queue).await
}

/// Sends live messages to their instances' queues. They are transient and not mandatory: a
/// queue that is gone belongs to an instance that is gone, whose clients replay on reconnect.
async fn publish_live(
    channel: &Channel,
    namespace: &str,
    deliveries: &[LiveDelivery],
) -> anyhow::Result<()> {
    let mut confirms = Vec::with_capacity(deliveries.len());
    for delivery in deliveries {
        let payload = serde_json::to_vec(&delivery.message)?;
        let queue = instance_queue(namespace, &delivery.instance);
        confirms.push(
            channel
                .basic_publish(
                    "".into(),
                    queue.as_str().into(),
                    BasicPublishOptions::default(),
                    &payload,
                    BasicProperties::default().with_content_type("application/json".into()),
                )
                .await?,
        );
    }
    metrics::counter!("live_messages_published_total").increment(deliveries.len() as u64);
    await_confirms(confirms, "live queues").await
}

async fn await_confirms(confirms: Vec<lapin::PublisherConfirm>, queue: &str) -> anyhow::Result<()> {
    for confirm in confirms {
        let confirmation = confirm.await?;
        if !confirmation.is_ack() {
            anyhow::bail!("the broker refused a message for {queue}");
        }
        if confirmation.take_message().is_some() {
            anyhow::bail!("no queue {queue} took the message");
        }
    }
    Ok(())
}

async fn relay(
    config: Arc<WorkerConfig>,
    pool: DbPool,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let queues = Queues::of(&config.feed);
    let connection = amqp::connect(&config.amqp, "agora-relay").await?;
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    declare(&channel, &config, &queues.events).await?;
    let (_listener, wake) = listen(&config.database.url).await?;
    loop {
        let published = relay_batch(&pool, &channel, &queues.events, config.relay_batch).await?;
        if published > 0 {
            metrics::counter!("feed_outbox_published_total").increment(published as u64);
            continue;
        }
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(config.relay_poll_ms)) => {}
            _ = stop.changed() => return Ok(()),
        }
    }
}

/// Publishes up to `limit` outbox rows and deletes them once confirmed, in one transaction:
/// rows stay locked (SKIP LOCKED lets other relays take others) until the broker has them.
async fn relay_batch(
    pool: &DbPool,
    channel: &Channel,
    queue: &str,
    limit: i64,
) -> anyhow::Result<usize> {
    let mut db = pool.get().await?;
    let tx = db.transaction().await?;
    let rows = tx
        .query(
            "SELECT id, kind, actor_id, subject_id FROM feed_outbox ORDER BY id LIMIT $1 \
             FOR UPDATE SKIP LOCKED",
            &[&limit],
        )
        .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut events = Vec::with_capacity(rows.len());
    for row in &rows {
        let kind: &str = row.get(1);
        events.push(FeedEvent {
            outbox_id: row.get(0),
            kind: FeedEventKind::parse(kind)
                .with_context(|| format!("unknown outbox kind {kind:?}"))?,
            actor_id: row.get(2),
            subject_id: row.get(3),
        });
    }
    publish_confirmed(channel, queue, &events).await?;
    let ids: Vec<i64> = events.iter().map(|event| event.outbox_id).collect();
    tx.execute("DELETE FROM feed_outbox WHERE id = ANY($1)", &[&ids])
        .await?;
    tx.commit().await?;
    Ok(events.len())
}

/// A dedicated connection that LISTENs for new outbox rows: the Notify fires on each. The
/// client must be kept: dropping it closes the connection.
async fn listen(url: &str) -> anyhow::Result<(tokio_postgres::Client, Arc<Notify>)> {
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
        // The connection ended; the relay still polls every second.
    });
    client.batch_execute("LISTEN feed_outbox").await?;
    Ok((client, wake))
}

#[derive(Debug, Clone, Copy)]
enum Lane {
    Events,
    Fanout,
}

impl Lane {
    fn name(self) -> &'static str {
        match self {
            Lane::Events => "events lane",
            Lane::Fanout => "bulk lane",
        }
    }
}

fn decode<T: DeserializeOwned>(data: &[u8]) -> Option<T> {
    serde_json::from_slice(data).ok()
}

async fn consume(
    config: Arc<WorkerConfig>,
    fanout: FanOut,
    lane: Lane,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let queues = Queues::of(&config.feed);
    let connection = amqp::connect(&config.amqp, lane.name()).await?;
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    declare(&channel, &config, &queues.events).await?;
    declare(&channel, &config, &queues.fanout).await?;
    channel
        .basic_qos(config.prefetch, BasicQosOptions::default())
        .await?;
    let queue = match lane {
        Lane::Events => &queues.events,
        Lane::Fanout => &queues.fanout,
    };
    let mut deliveries = channel
        .basic_consume(
            queue.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    loop {
        let delivery = tokio::select! {
            delivery = deliveries.next() => delivery,
            _ = stop.changed() => return Ok(()),
        };
        let Some(delivery) = delivery else {
            anyhow::bail!("the broker closed the consumer");
        };
        let delivery = delivery?;
        let outcome = match lane {
            Lane::Events => match decode::<FeedEvent>(&delivery.data) {
                Some(event) => Some(fanout.on_event(&event).await),
                None => None,
            },
            Lane::Fanout => match decode::<FanoutTask>(&delivery.data) {
                Some(task) => Some(fanout.on_task(&task).await),
                None => None,
            },
        };
        match outcome {
            None => {
                // Not ours to understand: retrying cannot help, so it is dropped, loudly.
                tracing::error!(lane = lane.name(), "dropping an undecodable message");
                delivery.ack(BasicAckOptions::default()).await?;
            }
            Some(Ok(outcome)) => {
                // The live messages and the continuation are safely queued before this message
                // is acknowledged.
                if !outcome.live.is_empty() {
                    publish_live(&channel, &config.feed.namespace, &outcome.live).await?;
                }
                if let Some(next) = outcome.next {
                    publish_confirmed(&channel, &queues.fanout, &[next]).await?;
                }
                delivery.ack(BasicAckOptions::default()).await?;
            }
            Some(Err(error)) => {
                tracing::warn!(lane = lane.name(), %error, "feed update failed; will retry");
                metrics::counter!("feed_worker_retries_total", "lane" => lane.name()).increment(1);
                tokio::time::sleep(Duration::from_millis(500)).await;
                delivery
                    .nack(BasicNackOptions {
                        requeue: true,
                        ..BasicNackOptions::default()
                    })
                    .await?;
            }
        }
    }
}
