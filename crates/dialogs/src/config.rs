use std::time::Duration;

use clap::Args;

/// A shard server as configured: `name=postgres://…`.
pub use agora_platform::config::NamedServer as ShardServer;

/// The dialogs service's own settings; flags or `AGORA_*` variables. It shares the main
/// database (sessions, users, the shard map), Redis and the namespace with the others.
#[derive(Debug, Clone, Args)]
pub struct DialogsConfig {
    /// Shard servers, comma-separated `name=postgres://…`. `agora migrate` migrates them and,
    /// if the shard map is empty, spreads the logical shards over them; afterwards the map in
    /// the main database is what counts (`agora dialogs reshard` changes it).
    #[arg(
        long = "dialog-shards",
        env = "AGORA_DIALOG_SHARDS",
        value_delimiter = ','
    )]
    pub shards: Vec<ShardServer>,

    /// Logical shards of a new map. Fixed once the map exists: resharding moves logical
    /// shards between servers, it never changes their number.
    #[arg(long = "dialog-logical-shards", env = "AGORA_DIALOG_LOGICAL_SHARDS", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..=8192))]
    pub logical_shards: u32,

    /// Pooled connections per shard server, per instance.
    #[arg(long = "dialog-shard-pool-size", env = "AGORA_DIALOG_SHARD_POOL_SIZE", default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub shard_pool_size: u32,

    /// How often an instance re-reads the shard map when no change was announced, in ms.
    #[arg(long = "dialog-map-poll-ms", env = "AGORA_DIALOG_MAP_POLL_MS", default_value_t = 5_000,
          value_parser = clap::value_parser!(u64).range(100..))]
    pub map_poll_ms: u64,

    /// How long a send waits for a logical shard that is being moved before answering 503.
    #[arg(long = "dialog-move-wait-ms", env = "AGORA_DIALOG_MOVE_WAIT_MS", default_value_t = 5_000,
          value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub move_wait_ms: u64,

    /// Characters a message may have at most.
    #[arg(long = "dialog-max-text-chars", env = "AGORA_DIALOG_MAX_TEXT_CHARS", default_value_t = 4_000,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_text_chars: u32,
}

impl DialogsConfig {
    pub fn for_shards(shards: Vec<ShardServer>) -> Self {
        Self {
            shards,
            logical_shards: 64,
            shard_pool_size: 16,
            map_poll_ms: 5_000,
            move_wait_ms: 5_000,
            max_text_chars: 4_000,
        }
    }

    pub fn map_poll(&self) -> Duration {
        Duration::from_millis(self.map_poll_ms)
    }

    pub fn move_wait(&self) -> Duration {
        Duration::from_millis(self.move_wait_ms)
    }
}
