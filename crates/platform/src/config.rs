//! Typed configuration shared by services. Every value comes from a flag or an `AGORA_*`
//! environment variable with a documented default, and is validated before anything starts.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, ValueEnum};

/// How to reach PostgreSQL and how many connections to keep.
#[derive(Debug, Clone, Args)]
pub struct DatabaseConfig {
    /// PostgreSQL URL of the primary.
    #[arg(
        long = "database-url",
        env = "AGORA_DATABASE_URL",
        default_value = "postgres://agora:agora@127.0.0.1:54320/agora"
    )]
    pub url: String,

    /// Connections in the pool. Requests beyond it queue instead of failing.
    #[arg(long = "db-pool-size", env = "AGORA_DB_POOL_SIZE", default_value_t = 32,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub pool_size: u32,

    /// How long a request may wait for a pooled connection before it gets 503, in milliseconds.
    /// Generous on purpose: under a burst requests should queue, not fail.
    #[arg(
        long = "db-wait-timeout-ms",
        env = "AGORA_DB_WAIT_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub wait_timeout_ms: u64,

    /// How long opening one connection may take, in milliseconds. Short, so a database that is
    /// down turns into a quick 503 rather than a hung request.
    #[arg(
        long = "db-connect-timeout-ms",
        env = "AGORA_DB_CONNECT_TIMEOUT_MS",
        default_value_t = 2_000
    )]
    pub connect_timeout_ms: u64,
}

impl DatabaseConfig {
    pub fn for_url(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            pool_size: 16,
            wait_timeout_ms: 10_000,
            connect_timeout_ms: 2_000,
        }
    }

    pub fn wait_timeout(&self) -> Duration {
        Duration::from_millis(self.wait_timeout_ms)
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
}

/// Where the HTTP server listens and how it treats requests.
#[derive(Debug, Clone, Args)]
pub struct HttpConfig {
    /// Address to listen on; port 0 picks a free port.
    #[arg(
        long = "listen",
        env = "AGORA_LISTEN",
        default_value = "127.0.0.1:8080"
    )]
    pub listen: SocketAddr,

    /// Largest accepted request body, in bytes.
    #[arg(long = "max-body-bytes", env = "AGORA_MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    pub max_body_bytes: usize,

    /// Seconds to let in-flight requests finish after SIGTERM before exiting.
    #[arg(
        long = "shutdown-grace-secs",
        env = "AGORA_SHUTDOWN_GRACE_SECS",
        default_value_t = 10
    )]
    pub shutdown_grace_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines for a terminal.
    Pretty,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Logging switches.
#[derive(Debug, Clone, Args)]
pub struct TelemetryConfig {
    /// Log line format.
    #[arg(long = "log-format", env = "AGORA_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,

    /// Log filter in `tracing` syntax, e.g. `info,agora_social=debug`.
    #[arg(long = "log", env = "AGORA_LOG", default_value = "info")]
    pub log_filter: String,
}
