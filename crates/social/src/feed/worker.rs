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

use agora_platform::amqp::{self, AmqpConfig, Delivery, Handled, Outgoing};
use agora_platform::db;
use agora_platform::outbox::{self, Outbox, Relay};
use agora_platform::settings::PlatformSettings;
use anyhow::Context;
use clap::Args;
use lapin::Channel;
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio_postgres::Row;

use super::FeedConfig;
use super::cache::{FeedCache, UNFOLLOW_MEMORY};
use super::fanout::{FanOut, FanoutTask, FeedEvent};
use crate::live::{LiveDelivery, Presence, instance_queue};
use crate::store::FeedEventKind;
use crate::store::Store;
use agora_platform::supervise::supervise;

#[derive(Debug, Clone, Args)]
pub struct WorkerConfig {
    #[command(flatten)]
    pub platform: PlatformSettings,

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

    /// Where the worker serves `/health`, `/ready` and `/metrics` (Prometheus). None by default:
    /// several workers may run on one machine, and each needs a port of its own.
    #[arg(long = "worker-ops-listen", env = "AGORA_WORKER_OPS_LISTEN")]
    pub ops_listen: Option<std::net::SocketAddr>,
}

struct Queues {
    events: String,
    fanout: String,
}

impl Queues {
    fn of(namespace: &str) -> Self {
        Self {
            events: format!("{namespace}.feed.events"),
            fanout: format!("{namespace}.feed.fanout"),
        }
    }
}

/// Runs the relay and both lanes until `shutdown` resolves.
pub async fn run(
    config: WorkerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let pool = db::connect_pool(&config.platform.database, "agora-worker")?;
    let cache = FeedCache::from_config(&config.platform, &config.feed)?;
    let presence = Presence::new(cache.redis().clone(), &config.platform.key_prefix());
    let fanout = FanOut::new(
        Store::new(agora_platform::replicas::Database::single(pool.clone())),
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
    if let Some(address) = config.ops_listen {
        tasks.spawn(serve_ops(address, pool.clone(), stop.clone()).await?);
    }
    let outbox = Arc::new(FeedOutbox);
    let relay_settings = Arc::new(Relay {
        queue: Queues::of(&config.platform.namespace).events,
        batch: config.relay_batch,
        poll: Duration::from_millis(config.relay_poll_ms),
    });
    tasks.spawn(supervise("relay", stop.clone(), {
        let (config, pool) = (config.clone(), pool.clone());
        move |stop| {
            outbox::relay(
                outbox.clone(),
                relay_settings.clone(),
                pool.clone(),
                config.platform.database.url.clone(),
                config.amqp.clone(),
                stop,
            )
        }
    }));
    for lane in [Lane::Events, Lane::Fanout] {
        tasks.spawn(supervise(lane.name(), stop.clone(), {
            let (config, fanout) = (config.clone(), fanout.clone());
            move |stop| consume(config.clone(), fanout.clone(), lane, stop)
        }));
    }
    tasks.spawn(prune_ended_friendships(
        Store::new(agora_platform::replicas::Database::single(pool.clone())),
        stop.clone(),
    ));
    tracing::info!(namespace = %config.platform.namespace, "feed worker running");
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// Forgets ended friendships once any post made during them has been fanned out, hourly.
/// Several workers may prune at once: the delete is idempotent.
async fn prune_ended_friendships(store: Store, mut stop: watch::Receiver<bool>) {
    loop {
        match store.prune_ended_friendships(UNFOLLOW_MEMORY).await {
            Ok(0) => {}
            Ok(pruned) => tracing::info!(pruned, "forgot ended friendships"),
            Err(error) => tracing::warn!(%error, "could not prune ended friendships"),
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(3600)) => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
    }
}

/// Binds the operations listener (failing fast on a taken port) and returns its server.
async fn serve_ops(
    address: std::net::SocketAddr,
    pool: db::DbPool,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<impl Future<Output = ()> + Send + 'static> {
    // Installs the recorder before the first counter, or the worker's metrics go nowhere.
    agora_platform::telemetry::prometheus();
    let http = agora_platform::config::HttpConfig::for_listen(address);
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address} (AGORA_WORKER_OPS_LISTEN)"))?;
    tracing::info!(address = %listener.local_addr()?, "worker operations endpoints listening");
    let ops =
        agora_platform::http::OpsEndpoints::default().check("postgres", db::readiness_check(pool));
    Ok(async move {
        let stopped = async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        };
        let health = agora_platform::http::health_router();
        if let Err(error) =
            agora_platform::http::serve_service(listener, health, ops, &http, None, stopped).await
        {
            tracing::error!(%error, "worker operations endpoints stopped");
        }
    })
}

/// `feed_outbox`, as the platform's relay reads it.
struct FeedOutbox;

impl Outbox for FeedOutbox {
    type Message = FeedEvent;

    fn notify_channel(&self) -> &str {
        crate::store::FEED_OUTBOX_CHANNEL
    }

    fn select_batch(&self) -> &str {
        "SELECT id, kind, actor_id, subject_id, tick, post_version FROM feed_outbox \
         ORDER BY id LIMIT $1 \
         FOR UPDATE SKIP LOCKED"
    }

    fn delete_batch(&self) -> &str {
        "DELETE FROM feed_outbox WHERE id = ANY($1)"
    }

    fn message(&self, row: &Row) -> anyhow::Result<(i64, FeedEvent)> {
        let kind: &str = row.get(1);
        let event = FeedEvent {
            outbox_id: row.get(0),
            kind: FeedEventKind::parse(kind)
                .with_context(|| format!("unknown outbox kind {kind:?}"))?,
            actor_id: row.get(2),
            subject_id: row.get(3),
            tick: row.get(4),
            post_version: row.get(5),
        };
        Ok((event.outbox_id, event))
    }
}

/// Sends live messages to their instances' queues. They are transient: a queue that is gone
/// belongs to an instance that is gone, whose clients replay on reconnect.
async fn publish_live(
    channel: &Channel,
    namespace: &str,
    deliveries: &[LiveDelivery],
) -> anyhow::Result<()> {
    let mut outgoing = Vec::with_capacity(deliveries.len());
    for delivery in deliveries {
        let queue = instance_queue(namespace, &delivery.instance);
        outgoing.push(Outgoing::json(queue, &delivery.message)?);
    }
    amqp::publish_all(channel, outgoing, Delivery::Transient).await?;
    metrics::counter!("live_messages_published_total").increment(deliveries.len() as u64);
    Ok(())
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
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let queues = Queues::of(&config.platform.namespace);
    let connection = amqp::connect(&config.amqp, lane.name()).await?;
    let channel = amqp::confirming_channel(&connection).await?;
    amqp::declare_queue(&channel, &config.amqp, &queues.events).await?;
    amqp::declare_queue(&channel, &config.amqp, &queues.fanout).await?;
    let queue = match lane {
        Lane::Events => &queues.events,
        Lane::Fanout => &queues.fanout,
    };
    let (channel, config, queues, fanout) = (&channel, &config, &queues, &fanout);
    amqp::consume(channel, queue, config.prefetch, stop, |data| async move {
        let outcome = match lane {
            Lane::Events => match decode::<FeedEvent>(&data) {
                Some(event) => fanout.on_event(&event).await,
                None => return Ok(Handled::Undecodable),
            },
            Lane::Fanout => match decode::<FanoutTask>(&data) {
                Some(task) => fanout.on_task(&task).await,
                None => return Ok(Handled::Undecodable),
            },
        };
        match outcome {
            Ok(outcome) => {
                // The live messages and the continuation are safely queued before this
                // message is acknowledged.
                if !outcome.live.is_empty() {
                    publish_live(channel, &config.platform.namespace, &outcome.live).await?;
                }
                if let Some(next) = outcome.next {
                    amqp::publish_confirmed(channel, &queues.fanout, &[next], Delivery::Durable)
                        .await?;
                }
                Ok(Handled::Done)
            }
            Err(error) => {
                metrics::counter!("feed_worker_retries_total", "lane" => lane.name()).increment(1);
                Ok(Handled::Retry(error.to_string()))
            }
        }
    })
    .await
}
