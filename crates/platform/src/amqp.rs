//! RabbitMQ: configuration, a bounded connect, durable queues, publishing with publisher
//! confirms, and consuming with manual acknowledgement. Callers own their reconnect loops
//! ([`crate::supervise`]), since what to redo after a reconnect is theirs to know.

use std::future::Future;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use futures_util::StreamExt as _;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use serde::Serialize;
use tokio::sync::watch;

#[derive(Debug, Clone, Args)]
pub struct AmqpConfig {
    /// RabbitMQ URL.
    #[arg(
        id = "amqp_url",
        long = "amqp-url",
        env = "AGORA_AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:61672/%2f"
    )]
    pub url: String,

    /// Delete a queue nobody has used for this long (0: never). For throwaway deployments
    /// such as tests; production queues must outlive any outage of their consumers.
    #[arg(
        id = "amqp_queue_expires_secs",
        long = "amqp-queue-expires-secs",
        env = "AGORA_AMQP_QUEUE_EXPIRES_SECS",
        default_value_t = 0
    )]
    pub queue_expires_secs: u64,
}

impl AmqpConfig {
    pub fn for_url(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            queue_expires_secs: 0,
        }
    }
}

/// How long a connect may take before it counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Heartbeat asked for when the URL names none. RabbitMQ's default, 60 s, is how long a peer
/// that vanished without closing its socket keeps its unacknowledged messages, and a feed
/// fan-out is a chain of such messages: after a killed worker that stalled fan-out for about a
/// minute. 5 s bounds that stall to 10-15 s.
const DEFAULT_HEARTBEAT_SECS: u16 = 5;

pub async fn connect(config: &AmqpConfig, name: &str) -> anyhow::Result<Connection> {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    let mut uri: lapin::uri::AMQPUri = config
        .url
        .parse()
        .map_err(|error| anyhow::anyhow!("AGORA_AMQP_URL is not a valid AMQP URL: {error}"))?;
    uri.query.heartbeat.get_or_insert(DEFAULT_HEARTBEAT_SECS);
    tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect_uri(uri, properties))
        .await
        .map_err(|_| anyhow::anyhow!("connecting to RabbitMQ timed out"))?
        .map_err(|error| anyhow::anyhow!("connecting to RabbitMQ: {error}"))
}

/// Exponential backoff for reconnect loops: 100 ms doubling to 5 s.
#[derive(Debug)]
pub struct Backoff(Duration);

impl Default for Backoff {
    fn default() -> Self {
        Backoff(Duration::from_millis(100))
    }
}

impl Backoff {
    pub async fn wait(&mut self) {
        tokio::time::sleep(self.0).await;
        self.0 = (self.0 * 2).min(Duration::from_secs(5));
    }

    pub fn reset(&mut self) {
        *self = Backoff::default();
    }
}

/// Declares a durable queue, with the deployment's expiry for throwaway deployments.
pub async fn declare_queue(
    channel: &Channel,
    config: &AmqpConfig,
    queue: &str,
) -> anyhow::Result<()> {
    let mut arguments = FieldTable::default();
    if config.queue_expires_secs > 0 {
        arguments.insert(
            "x-expires".into(),
            AMQPValue::LongUInt((config.queue_expires_secs * 1000) as u32),
        );
    }
    channel
        .queue_declare(queue.into(), QueueDeclareOptions::durable(), arguments)
        .await
        .with_context(|| format!("declaring {queue}"))?;
    Ok(())
}

/// A channel in confirm mode: every publish is acknowledged by the broker.
pub async fn confirming_channel(connection: &Connection) -> anyhow::Result<Channel> {
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok(channel)
}

/// How a message goes to its queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Persistent and mandatory: the broker must store it in an existing queue.
    Durable,
    /// Transient and not mandatory: a queue that is gone drops it (live notifications, whose
    /// receivers catch up another way).
    Transient,
}

/// Publishes JSON messages to `queue` and waits until the broker confirms them all.
pub async fn publish_confirmed<T: Serialize + Sync>(
    channel: &Channel,
    queue: &str,
    messages: &[T],
    delivery: Delivery,
) -> anyhow::Result<()> {
    let mut outgoing = Vec::with_capacity(messages.len());
    for message in messages {
        outgoing.push(Outgoing::json(queue, message)?);
    }
    publish_all(channel, outgoing, delivery).await
}

/// A message on its way to a queue.
pub struct Outgoing {
    queue: String,
    payload: Vec<u8>,
}

impl Outgoing {
    pub fn json<T: Serialize>(queue: impl Into<String>, message: &T) -> anyhow::Result<Self> {
        Ok(Self {
            queue: queue.into(),
            payload: serde_json::to_vec(message)?,
        })
    }
}

/// Publishes each message to its queue, then waits until the broker confirms them all (one
/// wait for the batch, not one per message).
pub async fn publish_all(
    channel: &Channel,
    messages: Vec<Outgoing>,
    delivery: Delivery,
) -> anyhow::Result<()> {
    let mut confirms = Vec::with_capacity(messages.len());
    for Outgoing { queue, payload } in messages {
        let properties = BasicProperties::default().with_content_type("application/json".into());
        let (options, properties) = match delivery {
            Delivery::Durable => (
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                properties.with_delivery_mode(2),
            ),
            Delivery::Transient => (BasicPublishOptions::default(), properties),
        };
        let confirm = channel
            .basic_publish(
                "".into(),
                queue.as_str().into(),
                options,
                &payload,
                properties,
            )
            .await?;
        confirms.push((queue, confirm));
    }
    for (queue, confirm) in confirms {
        let confirmation = confirm.await?;
        if !confirmation.is_ack() {
            anyhow::bail!("the broker refused a message for {queue}");
        }
        if delivery == Delivery::Durable && confirmation.take_message().is_some() {
            anyhow::bail!("no queue {queue} took the message");
        }
    }
    Ok(())
}

/// What a consumer did with a message.
#[derive(Debug)]
pub enum Handled {
    /// Done: acknowledge it.
    Done,
    /// Not now (a dependency failed): put it back after a pause, to be retried.
    Retry(String),
    /// Not ours to understand: retrying cannot help, so it is dropped, loudly.
    Undecodable,
}

/// Consumes `queue` with manual acknowledgement, at most `prefetch` messages in hand, until
/// `stop` turns true. A message is acknowledged only after `handle` finished with it; an error
/// from `handle` ends the consumer (its unacknowledged messages are redelivered), for the
/// caller's supervisor to restart.
pub async fn consume<F, Fut>(
    channel: &Channel,
    queue: &str,
    prefetch: u16,
    mut stop: watch::Receiver<bool>,
    mut handle: F,
) -> anyhow::Result<()>
where
    F: FnMut(Vec<u8>) -> Fut,
    Fut: Future<Output = anyhow::Result<Handled>>,
{
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await?;
    let mut deliveries = channel
        .basic_consume(
            queue.into(),
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
            anyhow::bail!("the broker closed the consumer of {queue}");
        };
        let mut delivery = delivery?;
        match handle(std::mem::take(&mut delivery.data)).await? {
            Handled::Done => {
                delivery.ack(BasicAckOptions::default()).await?;
            }
            Handled::Undecodable => {
                tracing::error!(queue, "dropping an undecodable message");
                delivery.ack(BasicAckOptions::default()).await?;
            }
            Handled::Retry(error) => {
                tracing::warn!(queue, %error, "handling failed; will retry");
                metrics::counter!("amqp_retries_total", "queue" => queue.to_owned()).increment(1);
                tokio::time::sleep(RETRY_PAUSE).await;
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

/// How long a failed message waits before going back to its queue.
const RETRY_PAUSE: Duration = Duration::from_millis(500);
