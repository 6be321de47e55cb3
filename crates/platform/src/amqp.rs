//! RabbitMQ: configuration and a bounded connect. Callers own their reconnect loops, since what
//! to redo after a reconnect (declare queues, resume consuming) is theirs to know.

use std::time::Duration;

use clap::Args;
use lapin::{Connection, ConnectionProperties};

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
