//! The settings every service of a deployment shares, whatever else it owns: the main
//! database (users and sessions), Redis, the namespace of Redis keys, channels and queues, and
//! the session settings. Each command of the binary flattens them once; a service's own
//! config holds only its own settings, and takes these by reference.

use clap::Args;

use crate::auth::{AuthConfig, SessionCache};
use crate::cache::{Redis, RedisConfig};
use crate::config::DatabaseConfig;
use crate::db::DbPool;
use crate::session::Sessions;

#[derive(Debug, Clone, Args)]
pub struct PlatformSettings {
    #[command(flatten)]
    pub database: DatabaseConfig,

    #[command(flatten)]
    pub redis: RedisConfig,

    /// Prefix of every Redis key and channel and RabbitMQ queue of this deployment, so several
    /// can share one Redis and one broker.
    #[arg(long = "namespace", env = "AGORA_NAMESPACE", default_value = "agora")]
    pub namespace: String,

    #[command(flatten)]
    pub auth: AuthConfig,
}

impl PlatformSettings {
    /// Defaults around a main database and a Redis (for tests and tools).
    pub fn for_urls(database_url: &str, redis_url: &str) -> Self {
        Self {
            database: DatabaseConfig::for_url(database_url),
            redis: RedisConfig::for_url(redis_url),
            namespace: "agora".into(),
            auth: AuthConfig::default(),
        }
    }

    /// What this deployment's Redis keys and channels start with (`<namespace>:`).
    pub fn key_prefix(&self) -> String {
        format!("{}:", self.namespace)
    }

    /// Bearer-token checks against the main database (`main`, a pool of it), with the shared
    /// session cache in Redis.
    pub fn sessions(&self, main: DbPool) -> anyhow::Result<Sessions> {
        Ok(Sessions::new(
            main,
            SessionCache::new(&self.auth, Redis::new(&self.redis)?, &self.key_prefix()),
        ))
    }
}
