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
        // READONLY: the server was a master and is a replica now (a failover): the handle
        // finds the new master shortly, so it is a wait, not a bug.
        if error.is_io_error()
            || error.code() == Some("READONLY")
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

/// Commands in a row that time out or lose their connection before the breaker opens.
const BREAKER_TRIPS: u32 = 3;
/// How long an open breaker fails callers at once before one command probes Redis again.
const BREAKER_PAUSE: Duration = Duration::from_secs(1);

/// A circuit breaker for one Redis handle. A Redis that stops answering without closing its
/// sockets (stalled, SIGSTOPped, swapping) would cost every command the full timeout, and
/// every request that touches Redis with it: throughput fell from 732 to 8 requests a second
/// in a probe. After [`BREAKER_TRIPS`] such failures in a row the breaker opens, and
/// [`Redis::connection`] fails at once, so each path takes its fallback (feeds and sessions
/// from PostgreSQL, limits let through) without waiting. Every [`BREAKER_PAUSE`] one command
/// is let through to probe; its success closes the breaker.
#[derive(Default)]
struct Breaker {
    failures: std::sync::atomic::AtomicU32,
    state: Mutex<BreakerState>,
}

#[derive(Default)]
struct BreakerState {
    /// While `Some`, callers fail at once until this instant; then one probes.
    open_until: Option<Instant>,
    /// When the probe now on its way was let through.
    probe_since: Option<Instant>,
}

impl Breaker {
    /// `Err` while open; past the pause, lets one caller through as the probe (another after
    /// [`BREAKER_PAUSE`] if that one never reports).
    fn admit(&self) -> Result<(), CacheError> {
        let mut state = self.state.lock().expect("not poisoned");
        let Some(until) = state.open_until else {
            return Ok(());
        };
        let now = Instant::now();
        let probing = state
            .probe_since
            .is_some_and(|since| now < since + BREAKER_PAUSE);
        if now < until || probing {
            return Err(CacheError::Unavailable(
                "redis is not answering; skipped for a moment (circuit open)".into(),
            ));
        }
        state.probe_since = Some(now);
        Ok(())
    }

    fn succeeded(&self) {
        self.failures.store(0, std::sync::atomic::Ordering::Relaxed);
        let mut state = self.state.lock().expect("not poisoned");
        if state.open_until.take().is_some() {
            state.probe_since = None;
            metrics::gauge!("redis_circuit_open").set(0.0);
            tracing::info!("redis answers again; circuit closed");
        }
    }

    fn failed(&self) {
        let failures = self
            .failures
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        let mut state = self.state.lock().expect("not poisoned");
        if failures < BREAKER_TRIPS && state.open_until.is_none() {
            return;
        }
        if state.open_until.is_none() {
            metrics::gauge!("redis_circuit_open").set(1.0);
            metrics::counter!("redis_circuit_opened_total").increment(1);
            tracing::warn!(
                failures,
                "redis is not answering; circuit open: requests skip it and use their \
                 fallbacks, one probe a second"
            );
        }
        state.open_until = Some(Instant::now() + BREAKER_PAUSE);
        state.probe_since = None;
    }

    fn record<T>(&self, outcome: &redis::RedisResult<T>) {
        match outcome {
            Err(error)
                if error.is_timeout()
                    || error.is_io_error()
                    || error.is_connection_dropped()
                    || error.is_connection_refusal() =>
            {
                self.failed()
            }
            // Redis answered, even if with an error.
            _ => self.succeeded(),
        }
    }
}

/// Logs that Redis was unavailable for `what`, at most once a second per `what`: with Redis
/// down or skipped by its circuit breaker every request takes its fallback, and a warning per
/// request would flood the log (and cost the request the line). Suppressed warnings are counted
/// in `redis_warnings_suppressed_total`.
pub fn warn_unavailable(what: &'static str, error: &CacheError) {
    static LAST: Mutex<Vec<(&'static str, Instant)>> = Mutex::new(Vec::new());
    let now = Instant::now();
    let mut last = LAST.lock().expect("not poisoned");
    match last.iter_mut().find(|(seen, _)| *seen == what) {
        Some((_, at)) if now.duration_since(*at) < Duration::from_secs(1) => {
            drop(last);
            metrics::counter!("redis_warnings_suppressed_total").increment(1);
            return;
        }
        Some((_, at)) => *at = now,
        None => last.push((what, now)),
    }
    drop(last);
    tracing::warn!(%error, what, "redis unavailable; using the fallback (repeats within a second are counted, not logged)");
}

/// A connection from [`Redis::connection`]: the multiplexed connection, whose every command's
/// outcome feeds the handle's circuit breaker. Cheap to clone.
#[derive(Clone)]
pub struct Connection {
    inner: ConnectionManager,
    breaker: Arc<Breaker>,
}

impl redis::aio::ConnectionLike for Connection {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        Box::pin(async move {
            let outcome = self.inner.req_packed_command(cmd).await;
            self.breaker.record(&outcome);
            outcome
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        Box::pin(async move {
            let outcome = self
                .inner
                .req_packed_commands(pipeline, offset, count)
                .await;
            self.breaker.record(&outcome);
            outcome
        })
    }

    fn get_db(&self) -> i64 {
        self.inner.get_db()
    }
}

#[derive(Default)]
struct State {
    manager: Option<ConnectionManager>,
    /// The server `manager` talks to (`host:port`; sentinel mode).
    address: Option<String>,
    /// No new connect attempt before this instant.
    retry_at: Option<Instant>,
}

/// Where the server is: a fixed URL, or wherever Redis Sentinel says the master is.
enum Source {
    Direct(redis::Client),
    Sentinel {
        sentinels: Vec<redis::Client>,
        master: String,
    },
}

/// A cheap-to-clone Redis handle.
#[derive(Clone)]
pub struct Redis {
    source: Arc<Source>,
    timeout: Duration,
    state: Arc<Mutex<State>>,
    /// The replica reads go to (sentinel mode; otherwise reads use `state`).
    replica: Arc<Mutex<State>>,
    /// Held by the one caller that is connecting.
    connecting: Arc<tokio::sync::Mutex<()>>,
    /// Whether the task that follows the master (sentinel mode) runs.
    following: Arc<std::sync::atomic::AtomicBool>,
    /// Shared by every connection of this handle, replica reads included.
    breaker: Arc<Breaker>,
}

impl Redis {
    /// Validates the URL; does not connect (the first command does).
    pub fn new(config: &RedisConfig) -> anyhow::Result<Self> {
        let client = redis::Client::open(config.url.as_str())
            .map_err(|error| anyhow::anyhow!("AGORA_REDIS_URL {:?}: {error}", config.url))?;
        Ok(Self::with_source(Source::Direct(client), config.timeout()))
    }

    /// A master found through Redis Sentinel (`sentinels` as `host:port`): writes go to it,
    /// [`Redis::read_connection`] to one of its replicas, and when the sentinels promote
    /// another server the handle follows within a second, without a restart.
    pub fn sentinel(sentinels: &[String], master: &str, timeout: Duration) -> anyhow::Result<Self> {
        anyhow::ensure!(!sentinels.is_empty(), "no Redis sentinel given");
        let sentinels = sentinels
            .iter()
            .map(|address| {
                redis::Client::open(format!("redis://{address}"))
                    .map_err(|error| anyhow::anyhow!("Redis sentinel {address:?}: {error}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self::with_source(
            Source::Sentinel {
                sentinels,
                master: master.to_owned(),
            },
            timeout,
        ))
    }

    fn with_source(source: Source, timeout: Duration) -> Self {
        Self {
            source: Arc::new(source),
            timeout,
            state: Arc::default(),
            replica: Arc::default(),
            connecting: Arc::default(),
            following: Arc::default(),
            breaker: Arc::default(),
        }
    }

    /// The master's client (and its address in sentinel mode).
    async fn master_client(&self) -> Result<(redis::Client, Option<String>), CacheError> {
        match &*self.source {
            Source::Direct(client) => Ok((client.clone(), None)),
            Source::Sentinel { sentinels, master } => {
                let address = self.ask_sentinels(sentinels, master).await?;
                let client = redis::Client::open(format!("redis://{address}"))
                    .map_err(|error| CacheError::Command(error.to_string()))?;
                Ok((client, Some(address)))
            }
        }
    }

    /// The master's `host:port`, from the first sentinel that answers.
    async fn ask_sentinels(
        &self,
        sentinels: &[redis::Client],
        master: &str,
    ) -> Result<String, CacheError> {
        let mut last = CacheError::Unavailable("no sentinel answered".into());
        for sentinel in sentinels {
            let asked = tokio::time::timeout(self.timeout, async {
                let mut connection = sentinel.get_multiplexed_async_connection().await?;
                redis::cmd("SENTINEL")
                    .arg("get-master-addr-by-name")
                    .arg(master)
                    .query_async::<Option<(String, u16)>>(&mut connection)
                    .await
            })
            .await;
            match asked {
                Ok(Ok(Some((host, port)))) => return Ok(format!("{host}:{port}")),
                Ok(Ok(None)) => {
                    last = CacheError::Command(format!("sentinels know no master {master:?}"))
                }
                Ok(Err(error)) => last = error.into(),
                Err(_) => last = CacheError::Unavailable("sentinel timed out".into()),
            }
        }
        Err(last)
    }

    /// A replica of the master that is up, as the sentinels see it.
    async fn replica_address(&self) -> Result<Option<String>, CacheError> {
        let Source::Sentinel { sentinels, master } = &*self.source else {
            return Ok(None);
        };
        for sentinel in sentinels {
            let asked = tokio::time::timeout(self.timeout, async {
                let mut connection = sentinel.get_multiplexed_async_connection().await?;
                redis::cmd("SENTINEL")
                    .arg("replicas")
                    .arg(master)
                    .query_async::<Vec<std::collections::HashMap<String, String>>>(&mut connection)
                    .await
            })
            .await;
            if let Ok(Ok(replicas)) = asked {
                return Ok(replicas
                    .iter()
                    .find(|replica| {
                        replica.get("flags").is_some_and(|flags| {
                            !flags.contains("down") && !flags.contains("disconnected")
                        }) && replica.get("master-link-status").is_some_and(|s| s == "ok")
                    })
                    .and_then(|replica| {
                        Some(format!("{}:{}", replica.get("ip")?, replica.get("port")?))
                    }));
            }
        }
        Err(CacheError::Unavailable("no sentinel answered".into()))
    }

    /// Follows the master (and the replica reads use) while this handle lives: the sentinels
    /// are asked every second, and a connection to a server that changed role is dropped, so
    /// the next command reconnects to the right one.
    fn follow(&self) {
        if !matches!(&*self.source, Source::Sentinel { .. })
            || self
                .following
                .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            return;
        }
        let weak_state = Arc::downgrade(&self.state);
        let this = Self {
            state: Arc::new(Mutex::new(State::default())),
            ..self.clone()
        };
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(Duration::from_secs(1));
            loop {
                ticker.tick().await;
                let Some(state) = weak_state.upgrade() else {
                    return;
                };
                let Source::Sentinel { sentinels, master } = &*this.source else {
                    return;
                };
                if let Ok(address) = this.ask_sentinels(sentinels, master).await {
                    let mut state = state.lock().expect("not poisoned");
                    if state
                        .address
                        .as_ref()
                        .is_some_and(|current| *current != address)
                    {
                        tracing::warn!(master = %address, "Redis master moved; reconnecting");
                        state.manager = None;
                        state.address = None;
                        state.retry_at = None;
                    }
                }
                if let Ok(replica) = this.replica_address().await {
                    let mut read = this.replica.lock().expect("not poisoned");
                    if read.address.is_some() && read.address != replica {
                        read.manager = None;
                        read.address = None;
                    }
                }
            }
        });
    }

    /// A connection for reads that may lag a little: a replica in sentinel mode, else the
    /// same connection as writes. Falls back to the master when no replica is up.
    pub async fn read_connection(&self) -> Result<Connection, CacheError> {
        if !matches!(&*self.source, Source::Sentinel { .. }) {
            return self.connection().await;
        }
        self.breaker.admit()?;
        self.follow();
        if let Some(manager) = self.replica.lock().expect("not poisoned").manager.clone() {
            return Ok(self.guarded(manager));
        }
        match self.replica_address().await {
            Ok(Some(address)) => {
                let client = redis::Client::open(format!("redis://{address}"))
                    .map_err(|error| CacheError::Command(error.to_string()))?;
                let manager = self.manager_for(client).await?;
                let mut read = self.replica.lock().expect("not poisoned");
                read.manager = Some(manager.clone());
                read.address = Some(address);
                Ok(self.guarded(manager))
            }
            _ => self.connection().await,
        }
    }

    fn guarded(&self, inner: ConnectionManager) -> Connection {
        Connection {
            inner,
            breaker: self.breaker.clone(),
        }
    }

    async fn manager_for(&self, client: redis::Client) -> Result<ConnectionManager, CacheError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1);
        tokio::time::timeout(
            self.timeout * 2,
            ConnectionManager::new_with_config(client, config),
        )
        .await
        .map_err(|_| CacheError::Unavailable("connect timed out".into()))
        .and_then(|result| result.map_err(CacheError::from))
    }

    /// A multiplexed connection; clones share one socket, which the manager re-opens after it
    /// breaks.
    /// Fails at once while the circuit breaker is open (Redis stopped answering).
    pub async fn connection(&self) -> Result<Connection, CacheError> {
        self.breaker.admit()?;
        match self.manager().await {
            Ok(manager) => Ok(self.guarded(manager)),
            Err(error) => {
                self.breaker.failed();
                Err(error)
            }
        }
    }

    async fn manager(&self) -> Result<ConnectionManager, CacheError> {
        if let Some(ready) = self.current() {
            return ready;
        }
        // One caller connects; the others wait for its outcome rather than trying too.
        let _connecting = self.connecting.lock().await;
        if let Some(ready) = self.current() {
            return ready;
        }
        self.follow();
        let connected = match self.master_client().await {
            Ok((client, address)) => self
                .manager_for(client)
                .await
                .map(|manager| (manager, address)),
            Err(error) => Err(error),
        };
        let mut state = self.state.lock().expect("not poisoned");
        match connected {
            Ok((manager, address)) => {
                state.manager = Some(manager.clone());
                state.address = address;
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
        let (client, _) = self.master_client().await?;
        tokio::time::timeout(self.timeout * 2, client.get_async_pubsub())
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

#[cfg(test)]
mod breaker_tests {
    use super::*;

    fn timeout() -> redis::RedisResult<()> {
        Err(redis::RedisError::from(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "timed out",
        )))
    }

    #[test]
    fn opens_after_failures_in_a_row_probes_once_and_closes_on_an_answer() {
        let breaker = Breaker::default();
        for _ in 0..BREAKER_TRIPS - 1 {
            breaker.record(&timeout());
            assert!(breaker.admit().is_ok(), "still closed");
        }
        breaker.record(&Ok(()));
        for _ in 0..BREAKER_TRIPS {
            breaker.record(&timeout());
        }
        assert!(breaker.admit().is_err(), "open: fail at once");
        // Past the pause, exactly one caller probes.
        breaker.state.lock().unwrap().open_until = Some(Instant::now());
        assert!(breaker.admit().is_ok(), "the probe");
        assert!(breaker.admit().is_err(), "the others wait for it");
        // A failed probe opens it again; a good one closes it.
        breaker.record(&timeout());
        assert!(breaker.admit().is_err());
        breaker.state.lock().unwrap().open_until = Some(Instant::now());
        assert!(breaker.admit().is_ok());
        breaker.record(&Ok(()));
        assert!(breaker.admit().is_ok());
        assert!(breaker.admit().is_ok(), "closed");
    }
}
