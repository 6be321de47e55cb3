//! The primary and its read replicas (docs/replication.md).
//!
//! Writes, transactions and every read that decides something (uniqueness, ownership, a
//! password) use the primary. Reads that tolerate a little lag may go to a replica: one that
//! is healthy, in recovery, close enough to the primary, and — for a user who wrote recently —
//! past the primary's WAL position after that write (read-your-writes). Anything else, and any
//! replica failure, falls back to the primary, so replicas add capacity and never errors.
//!
//! Health comes from a background check per server with a short timeout: a replica that fails
//! it, or whose lag passes a time or byte threshold, leaves rotation until a check passes
//! again. A connection error during a query takes it out at once.

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use tokio_postgres::NoTls;

use crate::cache::Redis;
use crate::config::{DatabaseConfig, NamedServer};
use crate::db::{self, Connection, DbError};

/// A WAL position, as PostgreSQL's `pg_lsn` counts bytes.
pub type Lsn = u64;

/// How fresh a read must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Any healthy replica will do.
    Any,
    /// Only a replica that has replayed this position (the reader's last write).
    Since(Lsn),
    /// Only the primary.
    Primary,
}

/// Which server answered, for metrics and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Served {
    Primary,
    Replica(&'static str),
}

/// The primary's pool and, when replicas are configured, the read routing. Cheap to clone.
#[derive(Clone)]
pub struct Database {
    primary: Pool,
    replicas: Option<Arc<Replicas>>,
}

struct Replicas {
    hosts: Vec<Host>,
    next: AtomicUsize,
    max_lag: Duration,
    max_lag_bytes: u64,
    marks: WriteMarks,
}

/// One replica: its pool for reads, and what the last health check found.
struct Host {
    /// Leaked once at start (the list is fixed by configuration): metric labels and readiness
    /// check names are `&'static str`.
    name: &'static str,
    url: String,
    pool: Pool,
    in_rotation: AtomicBool,
    /// The server is the primary (listed among the replicas, as after a failover).
    is_primary: AtomicBool,
    replay_lsn: AtomicU64,
    lag_bytes: AtomicU64,
    lag_micros: AtomicU64,
    /// Why it is out of rotation, for `/ready`; empty while in rotation.
    status: Mutex<String>,
}

impl Host {
    fn take_out(&self, why: String) {
        if self.in_rotation.swap(false, Ordering::Relaxed) {
            tracing::warn!(replica = self.name, reason = %why, "replica out of rotation");
        }
        metrics::gauge!("db_replica_healthy", "host" => self.name).set(0.0);
        *self.status.lock().expect("not poisoned") = why;
    }

    fn put_in(&self, replay_lsn: Lsn) {
        self.replay_lsn.store(replay_lsn, Ordering::Relaxed);
        if !self.in_rotation.swap(true, Ordering::Relaxed) {
            tracing::info!(replica = self.name, "replica in rotation");
        }
        metrics::gauge!("db_replica_healthy", "host" => self.name).set(1.0);
        self.status.lock().expect("not poisoned").clear();
    }
}

impl Database {
    /// The primary alone: every read goes to it.
    pub fn single(primary: Pool) -> Self {
        Self {
            primary,
            replicas: None,
        }
    }

    /// The primary and the configured replicas, whose health is checked in the background for
    /// as long as a clone of this handle lives. Write marks live in Redis under `key_prefix`.
    pub fn connect(
        config: &DatabaseConfig,
        application_name: &str,
        redis: Redis,
        key_prefix: &str,
    ) -> anyhow::Result<Self> {
        let primary = db::connect_pool(config, application_name)?;
        if config.replicas.is_empty() {
            return Ok(Self::single(primary));
        }
        let mut hosts = Vec::with_capacity(config.replicas.len());
        for NamedServer { name, url } in &config.replicas {
            let replica_config = DatabaseConfig {
                url: url.clone(),
                ..config.clone()
            };
            let name: &'static str = Box::leak(name.clone().into_boxed_str());
            metrics::gauge!("db_replica_healthy", "host" => name).set(0.0);
            hosts.push(Host {
                name,
                url: url.clone(),
                pool: db::connect_pool(&replica_config, application_name)?,
                in_rotation: AtomicBool::new(false),
                is_primary: AtomicBool::new(false),
                replay_lsn: AtomicU64::new(0),
                lag_bytes: AtomicU64::new(0),
                lag_micros: AtomicU64::new(0),
                status: Mutex::new("not checked yet".to_owned()),
            });
        }
        let replicas = Arc::new(Replicas {
            hosts,
            next: AtomicUsize::new(0),
            max_lag: Duration::from_millis(config.replica_max_lag_ms),
            max_lag_bytes: config.replica_max_lag_bytes,
            marks: WriteMarks {
                redis,
                key_prefix: format!("{key_prefix}lsn:"),
                ttl_secs: config.read_your_writes_secs,
            },
        });
        tokio::spawn(watch(
            Arc::downgrade(&replicas),
            config.url.clone(),
            Duration::from_millis(config.replica_check_ms),
            Duration::from_millis(config.replica_check_timeout_ms),
        ));
        Ok(Self {
            primary,
            replicas: Some(replicas),
        })
    }

    pub fn primary(&self) -> &Pool {
        &self.primary
    }

    pub fn has_replicas(&self) -> bool {
        self.replicas.is_some()
    }

    /// Runs a read on a replica fresh enough for `freshness`, or on the primary. `query` gets
    /// the connection to use (owned: a borrowed one would tie the future's lifetime to it). A replica
    /// that fails (connection lost, or a query cancelled by a conflict with recovery) hands
    /// the read to the primary; reads are safe to repeat.
    pub async fn read<T, Fut: Future<Output = Result<T, DbError>>>(
        &self,
        freshness: Freshness,
        query: impl Fn(Connection) -> Fut,
    ) -> Result<T, DbError> {
        Ok(self.read_served(freshness, query).await?.0)
    }

    /// Like [`Database::read`] for a lookup: a replica that finds nothing may simply not have
    /// replayed the row yet (a user who registered a moment ago), so the primary confirms.
    pub async fn read_found<T, Fut: Future<Output = Result<Option<T>, DbError>>>(
        &self,
        freshness: Freshness,
        query: impl Fn(Connection) -> Fut,
    ) -> Result<Option<T>, DbError> {
        match self.read_served(freshness, &query).await? {
            (None, Served::Replica(_)) => {
                metrics::counter!("db_read_fallbacks_total", "reason" => "absent_on_replica")
                    .increment(1);
                self.on_primary(&query).await
            }
            (found, _) => Ok(found),
        }
    }

    /// The read and which server answered it.
    pub async fn read_served<T, Fut: Future<Output = Result<T, DbError>>>(
        &self,
        freshness: Freshness,
        query: impl Fn(Connection) -> Fut,
    ) -> Result<(T, Served), DbError> {
        let Some(replicas) = &self.replicas else {
            return Ok((self.on_primary(&query).await?, Served::Primary));
        };
        let host = match freshness {
            Freshness::Primary => None,
            Freshness::Any => replicas.pick(0),
            Freshness::Since(lsn) => replicas.pick(lsn),
        };
        if let Some(host) = host {
            match run_on(&host.pool, &query).await {
                Ok(value) => {
                    metrics::counter!("db_reads_total", "host" => host.name).increment(1);
                    return Ok((value, Served::Replica(host.name)));
                }
                Err(DbError::Unavailable(cause)) => {
                    host.take_out(format!("connection failed: {cause}"));
                    metrics::counter!("db_read_fallbacks_total", "reason" => "replica_error")
                        .increment(1);
                }
                // On a standby, a query whose snapshot conflicts with WAL it must replay is
                // cancelled; the primary has no such conflict.
                Err(DbError::Contended(_)) => {
                    metrics::counter!("db_read_fallbacks_total", "reason" => "recovery_conflict")
                        .increment(1);
                }
                Err(other) => return Err(other),
            }
        } else if freshness != Freshness::Primary {
            let reason = if replicas.hosts.iter().any(|host| host.available()) {
                "not_caught_up"
            } else {
                "no_healthy_replica"
            };
            metrics::counter!("db_read_fallbacks_total", "reason" => reason).increment(1);
        }
        Ok((self.on_primary(&query).await?, Served::Primary))
    }

    async fn on_primary<T, Fut: Future<Output = Result<T, DbError>>>(
        &self,
        query: impl Fn(Connection) -> Fut,
    ) -> Result<T, DbError> {
        let value = run_on(&self.primary, query).await?;
        if self.replicas.is_some() {
            metrics::counter!("db_reads_total", "host" => "primary").increment(1);
        }
        Ok(value)
    }

    /// Records that `user` just wrote on `connection` (after its commit), so that their next
    /// reads wait for a replica that has replayed it. Without replicas it costs nothing. A
    /// mark that cannot be stored is logged: the write stands, and the user may briefly read
    /// an older state.
    pub async fn written(&self, connection: &Connection, user: i64) {
        let Some(replicas) = &self.replicas else {
            return;
        };
        let lsn = match connection
            .query_one("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint", &[])
            .await
        {
            Ok(row) => row.get::<_, i64>(0) as Lsn,
            Err(error) => {
                tracing::warn!(%error, user, "could not read the primary's WAL position");
                metrics::counter!("db_write_marks_failed_total").increment(1);
                return;
            }
        };
        if let Err(error) = replicas.marks.set(user, lsn).await {
            crate::cache::warn_unavailable("read-your-writes mark not stored", &error);
            metrics::counter!("db_write_marks_failed_total").increment(1);
        }
    }

    /// How fresh `user`'s reads must be: past their last write while its mark lives. Anyone
    /// when there are no replicas or no reader; the primary when the mark cannot be read.
    pub async fn freshness_for(&self, user: Option<i64>) -> Freshness {
        let (Some(replicas), Some(user)) = (&self.replicas, user) else {
            return Freshness::Any;
        };
        match replicas.marks.get(user).await {
            Ok(Some(lsn)) => Freshness::Since(lsn),
            Ok(None) => Freshness::Any,
            Err(error) => {
                tracing::debug!(%error, "read-your-writes mark unreadable, reading the primary");
                Freshness::Primary
            }
        }
    }

    /// `/ready`'s check: at least one replica in rotation. Optional: without replicas reads
    /// go to the primary, slower, not broken.
    pub fn replica_check(&self) -> Option<crate::http::CheckFn> {
        let replicas = self.replicas.clone()?;
        Some(Arc::new(move || {
            let outcome = if replicas.hosts.iter().any(Host::available) {
                Ok(())
            } else {
                Err("no replica in rotation: every read goes to the primary".to_owned())
            };
            Box::pin(async move { outcome })
        }))
    }

    /// `/ready`'s `replicas` section: each server's role, rotation, lag and reason.
    pub fn replica_states(&self) -> serde_json::Value {
        let Some(replicas) = &self.replicas else {
            return serde_json::Value::Null;
        };
        let mut states = serde_json::Map::new();
        for host in &replicas.hosts {
            let state = if host.is_primary.load(Ordering::Relaxed) {
                serde_json::json!({"role": "primary"})
            } else {
                let mut state = serde_json::json!({
                    "role": "replica",
                    "in_rotation": host.available(),
                    "lag_bytes": host.lag_bytes.load(Ordering::Relaxed),
                    "lag_seconds": host.lag_micros.load(Ordering::Relaxed) as f64 / 1e6,
                });
                let status = host.status.lock().expect("not poisoned");
                if !status.is_empty() {
                    state["reason"] = status.clone().into();
                }
                state
            };
            states.insert(host.name.to_owned(), state);
        }
        states.into()
    }

    /// Publishes the pools' gauges: the primary's as `primary`, each replica's by its name.
    pub fn record_pool_metrics(&self) {
        db::record_pool_metrics(&self.primary, "primary");
        if let Some(replicas) = &self.replicas {
            for host in &replicas.hosts {
                db::record_pool_metrics(&host.pool, host.name);
            }
        }
    }
}

impl Host {
    fn available(&self) -> bool {
        self.in_rotation.load(Ordering::Relaxed)
    }
}

impl Replicas {
    /// The next replica in rotation that has replayed `min_lsn`, round-robin.
    fn pick(&self, min_lsn: Lsn) -> Option<&Host> {
        let count = self.hosts.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..count)
            .map(|offset| &self.hosts[(start + offset) % count])
            .find(|host| host.available() && host.replay_lsn.load(Ordering::Relaxed) >= min_lsn)
    }
}

async fn run_on<T, Fut: Future<Output = Result<T, DbError>>>(
    pool: &Pool,
    query: impl Fn(Connection) -> Fut,
) -> Result<T, DbError> {
    query(pool.get().await?).await
}

/// Users' last write positions, in Redis so that every instance honours them.
struct WriteMarks {
    redis: Redis,
    key_prefix: String,
    ttl_secs: u64,
}

/// Only ever raises a mark: two writes of one user racing must leave the later position.
const RAISE_MARK: &str = r"
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > current then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
else
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return 1
";

impl WriteMarks {
    async fn set(&self, user: i64, lsn: Lsn) -> Result<(), crate::cache::CacheError> {
        let mut connection = self.redis.connection().await?;
        redis::Script::new(RAISE_MARK)
            .key(format!("{}{user}", self.key_prefix))
            .arg(lsn)
            .arg(self.ttl_secs)
            .invoke_async::<i64>(&mut connection)
            .await?;
        Ok(())
    }

    async fn get(&self, user: i64) -> Result<Option<Lsn>, crate::cache::CacheError> {
        let mut connection = self.redis.connection().await?;
        Ok(redis::cmd("GET")
            .arg(format!("{}{user}", self.key_prefix))
            .query_async::<Option<Lsn>>(&mut connection)
            .await?)
    }
}

/// What one check of a server found.
struct Reading {
    in_recovery: bool,
    /// Replayed position on a replica, current position on a primary.
    lsn: Lsn,
}

const CHECK: &str = "SELECT pg_is_in_recovery(), \
       (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END \
        - '0/0'::pg_lsn)::bigint";

/// The primary's WAL positions as the checks saw them, each with when it was first seen. A
/// replica's lag in time is how long the primary has been at a position the replica has not
/// replayed: time in which nothing was written is nobody's lag. (The age of the replica's last
/// replayed commit, `pg_last_xact_replay_timestamp()`, is not: after 20 idle seconds the first
/// write made every replica look 20 s behind and took them out of rotation.) Both readings
/// come from this process's clock, so the servers' clocks need not agree.
#[derive(Debug, Default)]
struct PrimaryPositions {
    seen: std::collections::VecDeque<(Lsn, Instant)>,
}

impl PrimaryPositions {
    /// Positions kept at most; a replica behind the oldest kept is behind at least that long.
    const KEPT: usize = 4096;

    fn record(&mut self, lsn: Lsn, now: Instant) {
        if self.seen.back().is_some_and(|(last, _)| *last >= lsn) {
            return;
        }
        if self.seen.len() == Self::KEPT {
            self.seen.pop_front();
        }
        self.seen.push_back((lsn, now));
    }

    fn latest(&self) -> Option<Lsn> {
        self.seen.back().map(|(lsn, _)| *lsn)
    }

    /// How long a replica that has replayed up to `replayed` has been behind.
    fn lag(&self, replayed: Lsn, now: Instant) -> Duration {
        let first_missing = self.seen.partition_point(|(lsn, _)| *lsn <= replayed);
        self.seen
            .get(first_missing)
            .map_or(Duration::ZERO, |(_, seen)| {
                now.saturating_duration_since(*seen)
            })
    }

    /// Forgets positions that every replica has replayed, keeping the latest.
    fn forget_up_to(&mut self, replayed: Lsn) {
        while self.seen.len() > 1 && self.seen.front().is_some_and(|(lsn, _)| *lsn <= replayed) {
            self.seen.pop_front();
        }
    }
}

/// A dedicated connection per server for health checks, so a check never waits behind
/// requests for a pooled one.
struct Checker {
    url: String,
    timeout: Duration,
    client: Option<tokio_postgres::Client>,
}

impl Checker {
    fn new(url: String, timeout: Duration) -> Self {
        Self {
            url,
            timeout,
            client: None,
        }
    }

    async fn read(&mut self) -> Result<Reading, String> {
        let outcome = tokio::time::timeout(self.timeout, self.read_unbounded()).await;
        let outcome = outcome.unwrap_or_else(|_| {
            Err(format!(
                "no answer to the health check within {} ms",
                self.timeout.as_millis()
            ))
        });
        if outcome.is_err() {
            // Whatever state the connection is in, the next check starts afresh.
            self.client = None;
        }
        outcome
    }

    async fn read_unbounded(&mut self) -> Result<Reading, String> {
        if self.client.as_ref().is_none_or(|client| client.is_closed()) {
            let mut config = tokio_postgres::Config::from_str(&self.url)
                .map_err(|error| format!("invalid URL: {error}"))?;
            config
                .connect_timeout(self.timeout)
                .application_name("agora-replica-check")
                .options(format!("-c statement_timeout={}", self.timeout.as_millis()));
            let (client, connection) = config
                .connect(NoTls)
                .await
                .map_err(|error| format!("cannot connect: {error}"))?;
            tokio::spawn(connection);
            self.client = Some(client);
        }
        let client = self.client.as_ref().expect("connected above");
        let row = client
            .query_one(CHECK, &[])
            .await
            .map_err(|error| format!("health check failed: {error}"))?;
        Ok(Reading {
            in_recovery: row.get(0),
            lsn: row.get::<_, i64>(1) as Lsn,
        })
    }
}

/// Checks every replica each `period` until the routing it serves is dropped.
async fn watch(replicas: Weak<Replicas>, primary_url: String, period: Duration, timeout: Duration) {
    let mut primary = Checker::new(primary_url, timeout);
    let mut checkers: Vec<Checker> = match replicas.upgrade() {
        Some(replicas) => replicas
            .hosts
            .iter()
            .map(|host| Checker::new(host.url.clone(), timeout))
            .collect(),
        None => return,
    };
    let mut positions = PrimaryPositions::default();
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(replicas) = replicas.upgrade() else {
            return;
        };
        let started = Instant::now();
        // The primary's position first: a replica's lag is measured against it. While the
        // primary cannot be read, the last known position stands.
        match primary.read().await {
            Ok(reading) if !reading.in_recovery => positions.record(reading.lsn, Instant::now()),
            Ok(_) => tracing::debug!("the primary URL reached a server in recovery"),
            Err(error) => tracing::debug!(%error, "primary position unavailable"),
        }
        let readings =
            futures_util::future::join_all(checkers.iter_mut().map(|checker| checker.read())).await;
        let now = Instant::now();
        let mut slowest: Option<Lsn> = None;
        for (host, reading) in replicas.hosts.iter().zip(readings) {
            if let Ok(reading) = &reading
                && reading.in_recovery
            {
                slowest = Some(slowest.map_or(reading.lsn, |lsn| lsn.min(reading.lsn)));
            }
            judge(&replicas, host, reading, &positions, now);
        }
        if let Some(slowest) = slowest {
            positions.forget_up_to(slowest);
        }
        metrics::histogram!("db_replica_check_seconds").record(started.elapsed().as_secs_f64());
    }
}

/// Puts a replica in or out of rotation from one reading.
fn judge(
    replicas: &Replicas,
    host: &Host,
    reading: Result<Reading, String>,
    positions: &PrimaryPositions,
    now: Instant,
) {
    let reading = match reading {
        Ok(reading) => reading,
        Err(error) => {
            host.is_primary.store(false, Ordering::Relaxed);
            return host.take_out(error);
        }
    };
    host.is_primary
        .store(!reading.in_recovery, Ordering::Relaxed);
    if !reading.in_recovery {
        host.lag_bytes.store(0, Ordering::Relaxed);
        host.lag_micros.store(0, Ordering::Relaxed);
        metrics::gauge!("db_replica_lag_bytes", "host" => host.name).set(0.0);
        metrics::gauge!("db_replica_lag_seconds", "host" => host.name).set(0.0);
        return host.take_out("the primary".to_owned());
    }
    let lag_bytes = positions
        .latest()
        .map_or(0, |primary| primary.saturating_sub(reading.lsn));
    let lag = positions.lag(reading.lsn, now);
    host.lag_bytes.store(lag_bytes, Ordering::Relaxed);
    host.lag_micros
        .store(lag.as_micros() as u64, Ordering::Relaxed);
    metrics::gauge!("db_replica_lag_bytes", "host" => host.name).set(lag_bytes as f64);
    metrics::gauge!("db_replica_lag_seconds", "host" => host.name).set(lag.as_secs_f64());
    if lag_bytes > replicas.max_lag_bytes {
        host.take_out(format!(
            "{lag_bytes} bytes of WAL behind the primary (limit {})",
            replicas.max_lag_bytes
        ));
    } else if lag > replicas.max_lag {
        host.take_out(format!(
            "{} ms behind the primary (limit {})",
            lag.as_millis(),
            replicas.max_lag.as_millis()
        ));
    } else {
        host.put_in(reading.lsn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_time_is_not_lag() {
        let start = Instant::now();
        let mut positions = PrimaryPositions::default();
        positions.record(100, start);
        // 30 s without writes: the replica that has 100 is current.
        let idle = start + Duration::from_secs(30);
        positions.record(100, idle);
        assert_eq!(positions.lag(100, idle), Duration::ZERO);
        // A write: the replica that has not replayed it yet is behind only since it was seen.
        positions.record(200, idle);
        let check = idle + Duration::from_millis(200);
        assert_eq!(positions.lag(100, check), Duration::from_millis(200));
        assert_eq!(positions.lag(200, check), Duration::ZERO);
    }

    #[test]
    fn a_replica_stuck_behind_is_behind_since_the_first_position_it_lacks() {
        let start = Instant::now();
        let mut positions = PrimaryPositions::default();
        for n in 0..10u64 {
            positions.record(100 + n, start + Duration::from_secs(n));
        }
        let now = start + Duration::from_secs(10);
        assert_eq!(positions.lag(104, now), Duration::from_secs(5));
        positions.forget_up_to(104);
        assert_eq!(positions.lag(104, now), Duration::from_secs(5));
        assert_eq!(positions.seen.len(), 5);
        assert_eq!(positions.latest(), Some(109));
    }
}
