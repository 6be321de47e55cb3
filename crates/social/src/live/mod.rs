//! The live feed, `/post/feed/posted` (`crates/social/api/otus-asyncapi.json`): friends' new posts pushed
//! over WebSocket as they are published.
//!
//! Routing is by instance, never by user: each server instance consumes one queue of its own,
//! `<namespace>.live.<instance>`, and records in Redis which users have a socket on it
//! ([`presence`]). When the worker fans a post out, it looks up which of the followers are
//! online where and sends each instance one message that lists its recipients. No queue is
//! bound per user, so a million followers cost the broker nothing, and an instance that holds
//! none of them never hears of the post.
//!
//! The live feed is a fast path, not the record: a client that reconnects with `?since=<last
//! post id>` gets what it missed from PostgreSQL, so a restart or a dropped message loses
//! nothing. See `docs/live.md`.

pub mod consumer;
pub mod hub;
pub mod presence;
pub mod revocations;

use std::time::Duration;

use agora_platform::amqp::AmqpConfig;
use clap::Args;
use serde::{Deserialize, Serialize};

pub use hub::LiveHub;
pub use presence::Presence;

/// Live feed settings of a server instance.
#[derive(Debug, Clone, Args)]
pub struct LiveConfig {
    #[command(flatten)]
    pub amqp: AmqpConfig,

    /// This instance's name in presence records and its queue name; empty: a fresh one per
    /// start (host, process id and a random suffix). Names must be unique among live instances.
    #[arg(long = "instance-id", env = "AGORA_INSTANCE_ID", default_value = "")]
    pub instance_id: String,

    /// Posts queued for one socket before it counts as too slow and is closed (the client
    /// reconnects with `since` and loses nothing). Bounds server memory per socket.
    #[arg(long = "live-socket-buffer", env = "AGORA_LIVE_SOCKET_BUFFER", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub socket_buffer: u32,

    /// Live sockets one user may hold on one instance; one more is refused with 429 before
    /// the upgrade. Tabs and devices of a person fit; a script opening thousands does not take
    /// the server's file descriptors from everyone else.
    #[arg(long = "live-sockets-per-user", env = "AGORA_LIVE_SOCKETS_PER_USER", default_value_t = 32,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub sockets_per_user: u32,

    /// Ping interval; a socket silent for two intervals is closed as dead.
    #[arg(long = "live-heartbeat-ms", env = "AGORA_LIVE_HEARTBEAT_MS", default_value_t = 30_000,
          value_parser = clap::value_parser!(u64).range(50..))]
    pub heartbeat_ms: u64,

    /// Most posts replayed to a client reconnecting with `since`; older ones are in the feed.
    #[arg(long = "live-replay-limit", env = "AGORA_LIVE_REPLAY_LIMIT", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub replay_limit: u32,

    /// Messages the instance queue holds before the oldest are dropped (an instance that
    /// stopped consuming must not fill the broker).
    #[arg(long = "live-queue-max", env = "AGORA_LIVE_QUEUE_MAX", default_value_t = 100_000,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub queue_max_length: u32,

    /// Age after which a queued live message is dropped: by then the client is better served
    /// by its replay.
    #[arg(long = "live-message-ttl-ms", env = "AGORA_LIVE_MESSAGE_TTL_MS", default_value_t = 60_000,
          value_parser = clap::value_parser!(u32).range(100..))]
    pub message_ttl_ms: u32,
}

impl LiveConfig {
    pub fn for_amqp(url: impl Into<String>) -> Self {
        Self {
            amqp: AmqpConfig::for_url(url),
            instance_id: String::new(),
            socket_buffer: 256,
            sockets_per_user: 32,
            heartbeat_ms: 30_000,
            replay_limit: 1000,
            queue_max_length: 100_000,
            message_ttl_ms: 60_000,
        }
    }

    pub fn heartbeat(&self) -> Duration {
        Duration::from_millis(self.heartbeat_ms)
    }

    /// The configured instance id, or a fresh unique one.
    pub fn resolve_instance_id(&self) -> String {
        if !self.instance_id.is_empty() {
            return self.instance_id.clone();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|name| name.trim().to_owned())
            .unwrap_or_else(|_| "host".into());
        // Unique per start: a restarted process must not inherit its predecessor's presence.
        static STARTS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.subsec_nanos());
        let start = STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("{host}-{}-{nanos:08x}-{start}", std::process::id())
    }
}

/// The queue an instance consumes.
pub fn instance_queue(namespace: &str, instance: &str) -> String {
    format!("{namespace}.live.{instance}")
}

/// What the worker sends an instance: one post and which of its users should see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveMessage {
    pub post_id: i64,
    pub author_id: i64,
    pub text: String,
    pub recipients: Vec<i64>,
}

/// One live message for one instance, as the fan-out produces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveDelivery {
    pub instance: String,
    pub message: LiveMessage,
}
