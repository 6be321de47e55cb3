//! Redis: a handle that connects lazily and reconnects by itself, with bounded timeouts, so a
//! Redis that is down at start or goes away later costs callers a quick error (which they turn
//! into a fallback or a 503) and never a hung request.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// How to reach Redis.
#[derive(Debug, Clone, Args)]
pub struct RedisConfig {
    /// Redis URL.
    #[arg(
        id = "redis_url",
        long = "redis-url",
        env = "AGORA_REDIS_URL",
        default_value = "redis://127.0.0.1:63790"
    )]
    pub url: String,

    /// Longest wait for one Redis command (or a connect), in milliseconds. Short: Redis is a
    /// cache, and a slow cache should be skipped, not waited for.
    #[arg(
        id = "redis_timeout_ms",
        long = "redis-timeout-ms",
        env = "AGORA_REDIS_TIMEOUT_MS",
        default_value_t = 500,
        value_parser = clap::value_parser!(u64).range(1..=60_000)
    )]
    pub timeout_ms: u64,
}

impl RedisConfig {
    pub fn for_url(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            timeout_ms: 500,
        }
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// Redis cannot be reached or did not answer in time: use the fallback.
    #[error("redis unavailable: {0}")]
    Unavailable(String),
    /// Redis answered with an error (a bug on our side, e.g. a script error).
    #[error("redis error: {0}")]
    Command(String),
}

impl From<redis::RedisError> for CacheError {
    fn from(error: redis::RedisError) -> Self {
        if error.is_io_error()
            || error.is_timeout()
            || error.is_connection_dropped()
            || error.is_connection_refusal()
            || error.is_unrecoverable_error()
        {
            CacheError::Unavailable(error.to_string())
        } else {
            CacheError::Command(error.to_string())
        }
    }
}

/// How long after a failed connect callers fail at once instead of trying again: with Redis
/// down, one attempt a second is paid for (by its caller and those who arrived during it), not
/// one per request.
const RECONNECT_PAUSE: Duration = Duration::from_secs(1);

#[derive(Default)]
struct State {
    manager: Option<ConnectionManager>,
    /// No new connect attempt before this instant.
    retry_at: Option<Instant>,
}

/// A cheap-to-clone Redis handle.
#[derive(Clone)]
pub struct Redis {
    client: redis::Client,
    timeout: Duration,
    state: Arc<Mutex<State>>,
    /// Held by the one caller that is connecting.
    connecting: Arc<tokio::sync::Mutex<()>>,
}

impl Redis {
    /// Validates the URL; does not connect (the first command does).
    pub fn new(config: &RedisConfig) -> anyhow::Result<Self> {
        let client = redis::Client::open(config.url.as_str())
            .map_err(|error| anyhow::anyhow!("AGORA_REDIS_URL {:?}: {error}", config.url))?;
        Ok(Self {
            client,
            timeout: config.timeout(),
            state: Arc::default(),
            connecting: Arc::default(),
        })
    }

    /// A multiplexed connection; clones share one socket, which the manager re-opens after it
    /// breaks.
    pub async fn connection(&self) -> Result<ConnectionManager, CacheError> {
        if let Some(ready) = self.current() {
            return ready;
        }
        // One caller connects; the others wait for its outcome rather than trying too.
        let _connecting = self.connecting.lock().await;
        if let Some(ready) = self.current() {
            return ready;
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1);
        let connected = tokio::time::timeout(
            self.timeout * 2,
            ConnectionManager::new_with_config(self.client.clone(), config),
        )
        .await
        .map_err(|_| CacheError::Unavailable("connect timed out".into()))
        .and_then(|result| result.map_err(CacheError::from));
        let mut state = self.state.lock().expect("not poisoned");
        match connected {
            Ok(manager) => {
                state.manager = Some(manager.clone());
                state.retry_at = None;
                Ok(manager)
            }
            Err(error) => {
                state.retry_at = Some(Instant::now() + RECONNECT_PAUSE);
                Err(error)
            }
        }
    }

    /// The connection, or the fast failure of a recent attempt; `None` when it is time to try.
    fn current(&self) -> Option<Result<ConnectionManager, CacheError>> {
        let state = self.state.lock().expect("not poisoned");
        if let Some(manager) = &state.manager {
            return Some(Ok(manager.clone()));
        }
        if state.retry_at.is_some_and(|at| Instant::now() < at) {
            return Some(Err(CacheError::Unavailable(
                "not connected; retrying shortly".into(),
            )));
        }
        None
    }

    /// A connection of its own for SUBSCRIBE (a subscribed connection can do nothing else).
    pub async fn pubsub(&self) -> Result<redis::aio::PubSub, CacheError> {
        tokio::time::timeout(self.timeout * 2, self.client.get_async_pubsub())
            .await
            .map_err(|_| CacheError::Unavailable("connect timed out".into()))?
            .map_err(CacheError::from)
    }

    /// PING, for readiness.
    pub async fn ping(&self) -> Result<(), CacheError> {
        let mut connection = self.connection().await?;
        let _: String = redis::cmd("PING").query_async(&mut connection).await?;
        Ok(())
    }
}
