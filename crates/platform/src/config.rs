//! Typed configuration shared by services. Every value comes from a flag or an `AGORA_*`
//! environment variable with a documented default, and is validated before anything starts.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, ValueEnum};

/// How to reach PostgreSQL and how many connections to keep.
#[derive(Debug, Clone, Args)]
pub struct DatabaseConfig {
    /// PostgreSQL URL of the primary.
    #[arg(
        long = "database-url",
        env = "AGORA_DATABASE_URL",
        default_value = "postgres://agora:agora@127.0.0.1:61432/agora"
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

    /// Longest a statement may run, in milliseconds, before PostgreSQL cancels it and the
    /// client gets 503; 0 for no limit. Bounds any query a client can trigger.
    #[arg(
        long = "db-statement-timeout-ms",
        env = "AGORA_DB_STATEMENT_TIMEOUT_MS",
        default_value_t = 5_000
    )]
    pub statement_timeout_ms: u64,

    /// Read replicas of the primary, comma-separated `name=postgres://…` (docs/replication.md).
    /// Reads that tolerate a little lag go to the healthy ones, round-robin. A listed server
    /// that is not in recovery (the primary, say after a failover) is left out of rotation.
    #[arg(
        long = "database-replicas",
        env = "AGORA_DATABASE_REPLICAS",
        value_delimiter = ','
    )]
    pub replicas: Vec<NamedServer>,

    /// A replica further behind the primary than this, in milliseconds, leaves rotation.
    #[arg(
        long = "replica-max-lag-ms",
        env = "AGORA_REPLICA_MAX_LAG_MS",
        default_value_t = 10_000
    )]
    pub replica_max_lag_ms: u64,

    /// A replica further behind the primary than this many bytes of WAL leaves rotation.
    #[arg(
        long = "replica-max-lag-bytes",
        env = "AGORA_REPLICA_MAX_LAG_BYTES",
        default_value_t = 8 * 1024 * 1024
    )]
    pub replica_max_lag_bytes: u64,

    /// Milliseconds between health checks of the replicas.
    #[arg(long = "replica-check-ms", env = "AGORA_REPLICA_CHECK_MS", default_value_t = 1_000,
          value_parser = clap::value_parser!(u64).range(50..=60_000))]
    pub replica_check_ms: u64,

    /// How long one health check may take, in milliseconds; a slower replica counts as down,
    /// so that one stalled server cannot stall the requests routed to it.
    #[arg(long = "replica-check-timeout-ms", env = "AGORA_REPLICA_CHECK_TIMEOUT_MS",
          default_value_t = 250, value_parser = clap::value_parser!(u64).range(10..=10_000))]
    pub replica_check_timeout_ms: u64,

    /// Seconds after a user's write during which their reads go only to replicas that have
    /// replayed it (read-your-writes).
    #[arg(long = "read-your-writes-secs", env = "AGORA_READ_YOUR_WRITES_SECS",
          default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub read_your_writes_secs: u64,
}

impl DatabaseConfig {
    /// A service's own database: these settings' timeouts, with its URL and pool size, and no
    /// replicas.
    pub fn for_service(&self, url: &str, pool_size: u32) -> Self {
        Self {
            url: url.to_owned(),
            pool_size,
            replicas: Vec::new(),
            ..self.clone()
        }
    }

    pub fn for_url(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            pool_size: 16,
            wait_timeout_ms: 10_000,
            connect_timeout_ms: 2_000,
            statement_timeout_ms: 5_000,
            replicas: Vec::new(),
            replica_max_lag_ms: 10_000,
            replica_max_lag_bytes: 8 * 1024 * 1024,
            replica_check_ms: 1_000,
            replica_check_timeout_ms: 250,
            read_your_writes_secs: 30,
        }
    }

    pub fn wait_timeout(&self) -> Duration {
        Duration::from_millis(self.wait_timeout_ms)
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
}

/// A PostgreSQL server as configured: `name=postgres://…`. The name labels its metrics and
/// its pool; the URL is validated at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedServer {
    pub name: String,
    pub url: String,
}

impl FromStr for NamedServer {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (name, url) = text
            .split_once('=')
            .ok_or_else(|| format!("{text:?} is not name=postgres://…"))?;
        let valid_name = !name.is_empty()
            && name.len() <= 63
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid_name {
            return Err(format!(
                "server name {name:?} must be 1-63 letters, digits, '_' or '-'"
            ));
        }
        tokio_postgres::Config::from_str(url)
            .map_err(|error| format!("server {name}: {url:?} is not a PostgreSQL URL: {error}"))?;
        Ok(Self {
            name: name.to_owned(),
            url: url.to_owned(),
        })
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

    /// Where `/metrics` and `/ready` are served: an address of their own (kept off the public
    /// port; port 0 picks a free one), or `api` to serve them on the API listener too.
    #[arg(
        long = "ops-listen",
        env = "AGORA_OPS_LISTEN",
        default_value = "127.0.0.1:9464"
    )]
    pub ops_listen: OpsListen,

    /// Largest accepted request body, in bytes. The default admits the longest post (10,000
    /// characters) even when every character is sent as a JSON-escaped surrogate pair.
    #[arg(long = "max-body-bytes", env = "AGORA_MAX_BODY_BYTES", default_value_t = 160 * 1024)]
    pub max_body_bytes: usize,

    /// Largest request head (request line and headers), in bytes; larger ones get 431.
    #[arg(long = "max-header-bytes", env = "AGORA_MAX_HEADER_BYTES", default_value_t = 16 * 1024,
          value_parser = clap::value_parser!(u64).range(8192..=1024 * 1024))]
    pub max_header_bytes: u64,

    /// Longest request URI, in bytes; longer ones get 414.
    #[arg(long = "max-uri-bytes", env = "AGORA_MAX_URI_BYTES", default_value_t = 8 * 1024)]
    pub max_uri_bytes: usize,

    /// Seconds a client has to send a request head. Also how long an idle keep-alive
    /// connection stays open.
    #[arg(long = "header-timeout-secs", env = "AGORA_HEADER_TIMEOUT_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub header_timeout_secs: u64,

    /// Seconds a client has to send a request body once its head arrived; then 408.
    #[arg(long = "body-timeout-secs", env = "AGORA_BODY_TIMEOUT_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub body_timeout_secs: u64,

    /// Open connections at most; one more is answered 503 and closed.
    #[arg(long = "max-connections", env = "AGORA_MAX_CONNECTIONS", default_value_t = 20_000,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,

    /// Milliseconds between SIGTERM and closing the listener, during which `/ready` answers
    /// 503 and new connections are still served, so a load balancer can drain this instance.
    #[arg(
        long = "shutdown-drain-ms",
        env = "AGORA_SHUTDOWN_DRAIN_MS",
        default_value_t = 2_000
    )]
    pub shutdown_drain_ms: u64,

    /// Addresses of reverse proxies (nginx, a load balancer) whose `X-Forwarded-For` is
    /// believed, comma-separated. A request from any other peer is attributed to the peer
    /// itself, so a client cannot pick the address its failed logins count against.
    #[arg(
        long = "trusted-proxies",
        env = "AGORA_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<std::net::IpAddr>,

    /// Seconds to let in-flight requests finish after the listener closed.
    #[arg(
        long = "shutdown-grace-secs",
        env = "AGORA_SHUTDOWN_GRACE_SECS",
        default_value_t = 10
    )]
    pub shutdown_grace_secs: u64,
}

impl HttpConfig {
    /// The defaults, listening on `listen`, with ops endpoints on the same listener.
    pub fn for_listen(listen: SocketAddr) -> Self {
        Self {
            listen,
            ops_listen: OpsListen::Api,
            max_body_bytes: 160 * 1024,
            max_header_bytes: 16 * 1024,
            max_uri_bytes: 8 * 1024,
            header_timeout_secs: 10,
            body_timeout_secs: 10,
            max_connections: 20_000,
            trusted_proxies: Vec::new(),
            shutdown_drain_ms: 0,
            shutdown_grace_secs: 1,
        }
    }

    pub fn shutdown_drain(&self) -> Duration {
        Duration::from_millis(self.shutdown_drain_ms)
    }

    pub fn body_timeout(&self) -> Duration {
        Duration::from_secs(self.body_timeout_secs)
    }
}

/// Where the operations endpoints listen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpsListen {
    /// On the API listener, beside the API.
    Api,
    /// On a listener of their own.
    Address(SocketAddr),
}

impl std::str::FromStr for OpsListen {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text == "api" {
            return Ok(OpsListen::Api);
        }
        text.parse()
            .map(OpsListen::Address)
            .map_err(|_| format!("expected an address like 127.0.0.1:9464, or `api`; got {text:?}"))
    }
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

    /// Which requests get an access line ("request finished", at INFO): `all`, `errors`
    /// (4xx, 5xx and requests slower than a second) or `off`. Failures (5xx) are logged as
    /// errors whatever this says.
    #[arg(long = "access-log", env = "AGORA_ACCESS_LOG", value_enum, default_value_t = AccessLog::All)]
    pub access_log: AccessLog,

    /// Log lines waiting for stdout at most. Lines are written by a thread of their own: when
    /// whoever reads stdout stalls, lines beyond this are dropped and counted
    /// (`log_lines_dropped_total`), and requests never wait for the reader.
    #[arg(long = "log-buffer-lines", env = "AGORA_LOG_BUFFER_LINES", default_value_t = 16_384,
          value_parser = clap::value_parser!(u64).range(16..=10_000_000))]
    pub log_buffer_lines: u64,
}

/// Which requests get an access line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AccessLog {
    All,
    Errors,
    Off,
}
