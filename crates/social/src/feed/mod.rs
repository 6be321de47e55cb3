//! The news feed: friends' posts, newest first.
//!
//! Reads come from Redis ([`cache`]), where each active user's newest `capacity` post ids are
//! kept, merged at read time with the recent posts of the celebrities they follow; anything
//! missing is rebuilt from PostgreSQL, and pages deeper than the cache come from PostgreSQL.
//! Writes never touch feeds directly: they add an outbox row in their own transaction, and the
//! worker fans the change out (see `docs/feed.md`).

pub mod cache;
pub mod fanout;
pub mod local;
pub mod reader;
pub mod worker;

use std::time::Duration;

use clap::Args;

pub use reader::{FeedPost, FeedReader};

/// Feed settings shared by the server and the worker.
#[derive(Debug, Clone, Args)]
pub struct FeedConfig {
    /// Newest posts kept per feed in Redis; deeper pages come from PostgreSQL.
    #[arg(long = "feed-capacity", env = "AGORA_FEED_CAPACITY", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub capacity: u32,

    /// A feed nobody has read for this long expires: its owner gets no pushes until they read
    /// again, which rebuilds it.
    #[arg(
        long = "feed-inactive-after-secs",
        env = "AGORA_FEED_INACTIVE_AFTER_SECS",
        default_value_t = 7 * 24 * 3600,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub inactive_after_secs: u64,

    /// Authors with at least this many followers are not pushed: readers merge their recent
    /// posts at read time.
    #[arg(
        long = "feed-celebrity-followers",
        env = "AGORA_FEED_CELEBRITY_FOLLOWERS",
        default_value_t = 10_000,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub celebrity_followers: u64,

    /// Followers updated per fan-out task (one Redis round trip each).
    #[arg(long = "feed-fanout-batch", env = "AGORA_FEED_FANOUT_BATCH", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub fanout_batch: u32,

    /// Bytes of post text each server keeps in memory in front of Redis (0: none). Edits and
    /// deletions reach every server at once; see docs/feed.md.
    #[arg(long = "post-memory-cache-bytes", env = "AGORA_POST_MEMORY_CACHE_BYTES",
          default_value_t = 64 << 20)]
    pub post_memory_cache_bytes: usize,

    /// Seconds a post body stays in a server's memory, at most.
    #[arg(long = "post-memory-cache-ttl-secs", env = "AGORA_POST_MEMORY_CACHE_TTL_SECS",
          default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub post_memory_cache_ttl_secs: u64,

    /// For tests only: milliseconds a feed read waits between loading post bodies from
    /// PostgreSQL and writing them back to Redis, to widen the race with an edit.
    #[arg(
        long = "feed-test-writeback-delay-ms",
        env = "AGORA_FEED_TEST_WRITEBACK_DELAY_MS",
        default_value_t = 0,
        hide = true
    )]
    pub test_writeback_delay_ms: u64,
}

impl FeedConfig {
    pub fn defaults() -> Self {
        Self {
            capacity: 1000,
            inactive_after_secs: 7 * 24 * 3600,
            celebrity_followers: 10_000,
            fanout_batch: 1000,
            post_memory_cache_bytes: 64 << 20,
            post_memory_cache_ttl_secs: 60,
            test_writeback_delay_ms: 0,
        }
    }

    pub fn inactive_after(&self) -> Duration {
        Duration::from_secs(self.inactive_after_secs)
    }
}
