use std::time::Duration;

use clap::Args;

use crate::feed::FeedConfig;
use crate::live::LiveConfig;
pub use crate::store::SearchOrder;

/// The social network's own settings (flags or `AGORA_*` variables); what it shares with
/// every service (database, Redis, namespace, sessions) is `PlatformSettings`.
#[derive(Debug, Clone, Args)]
pub struct SocialConfig {
    #[command(flatten)]
    pub feed: FeedConfig,

    #[command(flatten)]
    pub live: LiveConfig,

    /// Order of search results: `name`, the order of the index that serves the search, so a
    /// short prefix reads only the rows it returns; or `id`, the order before that change,
    /// which reads and sorts every match (kept so a benchmark can measure both in one run).
    #[arg(long = "search-order", env = "AGORA_SEARCH_ORDER", value_enum, default_value_t = SearchOrder::Name)]
    pub search_order: SearchOrder,

    /// Live sessions (tokens) one user may hold; a login beyond it ends the oldest.
    #[arg(long = "max-sessions-per-user", env = "AGORA_MAX_SESSIONS_PER_USER", default_value_t = 100,
          value_parser = clap::value_parser!(i64).range(1..=100_000))]
    pub max_sessions_per_user: i64,

    /// Lifetime of a login token, in seconds.
    #[arg(long = "token-ttl-secs", env = "AGORA_TOKEN_TTL_SECS", default_value_t = 24 * 3600,
          value_parser = clap::value_parser!(u64).range(1..=365 * 24 * 3600))]
    pub token_ttl_secs: u64,

    /// Password hashes computed at once; 0 means one per CPU core.
    #[arg(
        long = "password-hash-concurrency",
        env = "AGORA_PASSWORD_HASH_CONCURRENCY",
        default_value_t = 0
    )]
    pub password_hash_concurrency: usize,

    /// Password operations allowed to wait for a hashing slot before logins get 503.
    #[arg(
        long = "password-hash-queue",
        env = "AGORA_PASSWORD_HASH_QUEUE",
        default_value_t = 256
    )]
    pub password_hash_queue: usize,
}

impl SocialConfig {
    pub fn token_ttl(&self) -> Duration {
        Duration::from_secs(self.token_ttl_secs)
    }

    pub fn hash_concurrency(&self) -> usize {
        if self.password_hash_concurrency > 0 {
            self.password_hash_concurrency
        } else {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        }
    }
}
