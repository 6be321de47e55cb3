//! A server instance's side of the live feed: it consumes its own queue and hands each post to
//! the hub, and keeps its presence in Redis fresh.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use agora_platform::amqp::{self, Handled};
use anyhow::Context;
use lapin::options::QueueDeclareOptions;
use lapin::types::{AMQPValue, FieldTable};
use tokio::sync::watch;

use super::hub::{LiveHub, LivePost, PresenceCommand};
use super::presence::{Change, REFRESH_EVERY};
use super::{LiveConfig, LiveMessage, instance_queue};
use agora_platform::supervise::supervise;

/// An instance queue nobody consumes is deleted after this long: instance ids are fresh per
/// start, so a stopped instance's queue would otherwise stay forever.
const QUEUE_EXPIRES: Duration = Duration::from_secs(300);

/// Whether the instance is consuming its queue right now, for `/ready`.
#[derive(Debug, Default)]
pub struct LiveStatus {
    consuming: AtomicBool,
    /// Set after the first successful start: a later start is a restart.
    consumed_before: AtomicBool,
}

impl LiveStatus {
    pub fn is_consuming(&self) -> bool {
        self.consuming.load(Ordering::Relaxed)
    }
}

/// The background parts of an instance's live feed.
pub struct LiveTasks {
    pub status: Arc<LiveStatus>,
    /// Ends after the instance has withdrawn its presence.
    pub presence: tokio::task::JoinHandle<()>,
}

/// Starts the queue consumer and the presence task; both stop when `stop` turns true, and the
/// instance then withdraws its presence.
pub fn spawn(
    config: LiveConfig,
    namespace: String,
    hub: LiveHub,
    stop: watch::Receiver<bool>,
) -> LiveTasks {
    let status = Arc::new(LiveStatus::default());
    let queue = instance_queue(&namespace, hub.instance());
    tokio::spawn(supervise("live consumer", stop.clone(), {
        let (config, hub, status, queue) = (
            Arc::new(config),
            hub.clone(),
            status.clone(),
            Arc::new(queue),
        );
        move |stop| {
            consume(
                config.clone(),
                queue.clone(),
                hub.clone(),
                status.clone(),
                stop,
            )
        }
    }));
    let commands = hub
        .take_presence_commands()
        .expect("one presence task per hub");
    let presence = tokio::spawn(run_presence(hub, commands, stop));
    LiveTasks { status, presence }
}

/// Applies the hub's presence changes in the order they happened, batching whatever queued
/// up meanwhile into one round trip, and rewrites the whole set every [`REFRESH_EVERY`]. When
/// Redis comes back after a failure, the routing may have missed this instance's users, so
/// every session is told to make its client replay.
async fn run_presence(
    hub: LiveHub,
    mut commands: tokio::sync::mpsc::Receiver<PresenceCommand>,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(REFRESH_EVERY);
    let mut failing = false;
    loop {
        let outcome = tokio::select! {
            command = commands.recv() => {
                let Some(first) = command else { break };
                let mut batch = vec![first];
                while batch.len() < 1000 {
                    match commands.try_recv() {
                        Ok(command) => batch.push(command),
                        Err(_) => break,
                    }
                }
                apply(&hub, batch).await
            }
            _ = ticker.tick() => hub.presence().replace(hub.instance(), &hub.users()).await,
            _ = stop.changed() => break,
        };
        match outcome {
            Ok(()) if failing => {
                failing = false;
                tracing::info!("live presence recorded again; clients replay what they missed");
                hub.interrupt_all();
            }
            Ok(()) => {}
            Err(error) => {
                if !failing {
                    tracing::warn!(%error, "could not record live presence");
                }
                failing = true;
            }
        }
    }
    if let Err(error) = hub.presence().withdraw(hub.instance()).await {
        tracing::debug!(%error, "could not withdraw live presence; it expires by itself");
    }
}

async fn apply(
    hub: &LiveHub,
    batch: Vec<PresenceCommand>,
) -> Result<(), agora_platform::cache::CacheError> {
    let mut changes = Vec::with_capacity(batch.len());
    let mut waiting = Vec::new();
    for command in batch {
        match command {
            PresenceCommand::Join { user, done } => {
                changes.push(Change::Join(user));
                waiting.push(done);
            }
            // A new socket of the same user may have registered since: then the user stays.
            PresenceCommand::Leave(user) if !hub.is_connected(user) => {
                changes.push(Change::Leave(user));
            }
            PresenceCommand::Leave(_) => {}
        }
    }
    let outcome = if changes.is_empty() {
        Ok(())
    } else {
        hub.presence().apply(hub.instance(), &changes).await
    };
    for done in waiting {
        let _ = done.send(outcome.is_ok());
    }
    outcome
}

/// Clears the status flag however consumption ends.
struct Consuming<'a>(&'a LiveStatus);

impl Drop for Consuming<'_> {
    fn drop(&mut self) {
        self.0.consuming.store(false, Ordering::Relaxed);
    }
}

async fn consume(
    config: Arc<LiveConfig>,
    queue: Arc<String>,
    hub: LiveHub,
    status: Arc<LiveStatus>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let connection = amqp::connect(&config.amqp, "agora-live").await?;
    let channel = connection.create_channel().await?;
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-expires".into(),
        AMQPValue::LongUInt(QUEUE_EXPIRES.as_millis() as u32),
    );
    arguments.insert(
        "x-max-length".into(),
        AMQPValue::LongUInt(config.queue_max_length),
    );
    arguments.insert(
        "x-overflow".into(),
        AMQPValue::LongString("drop-head".into()),
    );
    arguments.insert(
        "x-message-ttl".into(),
        AMQPValue::LongUInt(config.message_ttl_ms),
    );
    // Not durable: live messages are worthless after a broker restart, and clients replay.
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions::default(),
            arguments,
        )
        .await
        .with_context(|| format!("declaring {queue}"))?;
    status.consuming.store(true, Ordering::Relaxed);
    let _consuming = Consuming(&status);
    if status.consumed_before.swap(true, Ordering::Relaxed) {
        // Messages routed while the queue was gone (a broker restart) were dropped.
        tracing::info!("live queue consumed again; clients replay what they missed");
        hub.interrupt_all();
    }
    tracing::info!(%queue, "consuming live feed messages");
    let hub = &hub;
    amqp::consume(&channel, &queue, 256, stop, |data| async move {
        let Ok(message) = serde_json::from_slice::<LiveMessage>(&data) else {
            return Ok(Handled::Undecodable);
        };
        let post = Arc::new(LivePost {
            id: message.post_id,
            author_id: message.author_id,
            text: message.text,
        });
        hub.deliver(post, &message.recipients);
        metrics::counter!("live_messages_received_total").increment(1);
        Ok(Handled::Done)
    })
    .await
}
