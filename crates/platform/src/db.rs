//! The PostgreSQL pool, migrations, and the line between "the database is unavailable" (503,
//! retry) and "this query failed" (a bug or a constraint, never retried blindly).

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

use crate::config::DatabaseConfig;

pub use deadpool_postgres::{Object as Connection, Pool as DbPool};

/// Builds a pool; connections open lazily, so this succeeds while the database is down and the
/// service starts anyway, answering 503 until it returns.
pub fn connect_pool(config: &DatabaseConfig, application_name: &str) -> anyhow::Result<Pool> {
    let mut pg = tokio_postgres::Config::from_str(&config.url)
        .with_context(|| "AGORA_DATABASE_URL is not a valid PostgreSQL URL")?;
    pg.connect_timeout(config.connect_timeout());
    if config.statement_timeout_ms > 0 {
        pg.options(format!(
            "-c statement_timeout={}",
            config.statement_timeout_ms
        ));
        COMMIT_DEADLINE_MS.store(config.statement_timeout_ms, Ordering::Relaxed);
    }
    if pg.get_application_name().is_none() {
        pg.application_name(application_name);
    }
    let manager = Manager::from_config(
        pg,
        NoTls,
        ManagerConfig {
            // A cheap `is_closed` check: a connection the server dropped is replaced, and a
            // query on a half-dead one fails fast and is reported as unavailable.
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(config.pool_size as usize)
        .wait_timeout(Some(config.wait_timeout()))
        .create_timeout(Some(config.connect_timeout()))
        .recycle_timeout(Some(config.connect_timeout()))
        .runtime(Runtime::Tokio1)
        .build()
        .context("building the database pool")
}

/// A pool for commands an operator runs (seeding, scenarios, rebuilds): their statements may
/// run long by design, so the statement timeout, which bounds what a client can trigger, is off.
pub fn connect_batch_pool(config: &DatabaseConfig, application_name: &str) -> anyhow::Result<Pool> {
    let config = DatabaseConfig {
        statement_timeout_ms: 0,
        ..config.clone()
    };
    connect_pool(&config, application_name)
}

/// Publishes pool gauges; called right before `/metrics` renders.
pub fn record_pool_metrics(pool: &Pool, name: &'static str) {
    let status = pool.status();
    metrics::gauge!("db_pool_connections_max", "pool" => name).set(status.max_size as f64);
    metrics::gauge!("db_pool_connections_open", "pool" => name).set(status.size as f64);
    metrics::gauge!("db_pool_connections_idle", "pool" => name).set(status.available as f64);
    metrics::gauge!("db_pool_waiters", "pool" => name).set(status.waiting as f64);
}

/// A database failure, classified for the client.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database cannot be reached, refuses connections, or the pool is exhausted.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The statement ran past the statement timeout and was cancelled.
    #[error("database query timed out: {0}")]
    TimedOut(String),
    /// The statement failed for another reason (constraint, bug).
    #[error("database query failed: {}", describe(.0))]
    Query(#[source] tokio_postgres::Error),
    /// The transaction lost a race it cannot win by waiting (a serialization failure under
    /// REPEATABLE READ, a deadlock): repeating it whole is safe and usually succeeds.
    #[error("transaction conflict: {0}")]
    Contended(String),
    /// The connection broke during COMMIT: the transaction may have committed or not.
    #[error("commit outcome unknown: {0}")]
    OutcomeUnknown(String),
}

/// The server's SQLSTATE and message: tokio-postgres displays only "db error" for them.
fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{} {}", db.code().code(), db.message()),
        None => error.to_string(),
    }
}

/// How long a COMMIT may take, in milliseconds: the statement timeout of the last pool made
/// with one (`AGORA_DB_STATEMENT_TIMEOUT_MS`). The statement timeout itself does not cover a
/// COMMIT waiting for a synchronous replica, which waits as long as no replica confirms.
static COMMIT_DEADLINE_MS: AtomicU64 = AtomicU64::new(5_000);

/// The pools (by the address of their manager, the same for every clone) whose last COMMIT
/// ran past its deadline: readiness reports that writes cannot commit there (see
/// [`commit_check`]). A pool leaves the list with its next COMMIT that did not.
static STALLED_POOLS: std::sync::Mutex<Vec<usize>> = std::sync::Mutex::new(Vec::new());
/// Whether the list may be non-empty: every other commit skips the lock.
static ANY_STALLED: AtomicBool = AtomicBool::new(false);

fn pool_key(pool: &Pool) -> usize {
    std::ptr::from_ref(pool.manager()) as usize
}

fn set_stalled(pool: &Pool, stalled: bool) {
    if !stalled && !ANY_STALLED.load(Ordering::Relaxed) {
        return;
    }
    let key = pool_key(pool);
    let mut pools = STALLED_POOLS.lock().expect("not poisoned");
    pools.retain(|other| *other != key);
    if stalled {
        pools.push(key);
    }
    ANY_STALLED.store(!pools.is_empty(), Ordering::Relaxed);
}

fn is_stalled(pool: &Pool) -> bool {
    ANY_STALLED.load(Ordering::Relaxed)
        && STALLED_POOLS
            .lock()
            .expect("not poisoned")
            .contains(&pool_key(pool))
}

/// Commits `tx`. A connection that breaks during COMMIT (the primary failing over, say) leaves
/// the outcome unknown: the server may have committed and lost only its answer. That is told
/// apart from "unavailable", so that nobody repeats such a write blindly.
///
/// A COMMIT that is not confirmed within the deadline (a synchronous commit with no replica to
/// confirm it) is given up the same way, with an unknown outcome: its wait is cancelled, which
/// leaves the transaction committed on the primary alone, and the connection, answered, goes
/// back to the pool. The client is told at once instead of hanging for as long as the
/// replicas are gone.
pub async fn commit(pool: &Pool, tx: deadpool_postgres::Transaction<'_>) -> Result<(), DbError> {
    let deadline = Duration::from_millis(COMMIT_DEADLINE_MS.load(Ordering::Relaxed));
    let cancel = tx.cancel_token();
    // A serialization failure can also surface at COMMIT: the transaction did not commit, and
    // the mapping below (through From) keeps it retryable.
    match tokio::time::timeout(deadline, tx.commit()).await {
        Ok(outcome) => {
            set_stalled(pool, false);
            outcome.map_err(|error| {
                if is_connectivity_error(&error) {
                    DbError::OutcomeUnknown(error.to_string())
                } else {
                    error.into()
                }
            })
        }
        Err(_) => {
            set_stalled(pool, true);
            metrics::counter!("db_commit_timeouts_total").increment(1);
            tracing::warn!(
                deadline_ms = deadline.as_millis() as u64,
                "a commit was not confirmed in time (is a synchronous replica left?); \
                 its outcome is unknown to the client"
            );
            // The cancel opens a connection of its own, which a partitioned server may never
            // answer: bounded, and off the request's path.
            tokio::spawn(async move {
                let _ = tokio::time::timeout(
                    Duration::from_secs(5),
                    cancel.cancel_query(tokio_postgres::NoTls),
                )
                .await;
            });
            Err(DbError::OutcomeUnknown(format!(
                "the commit was not confirmed within {} ms",
                deadline.as_millis()
            )))
        }
    }
}

/// A readiness check that fails while `pool`'s commits are not confirmed within their
/// deadline (no synchronous replica left): reads still work, writes answer 5004.
pub fn commit_check(pool: Pool) -> impl Fn() -> crate::http::CheckFuture + Send + Sync + 'static {
    move || {
        let stalled = is_stalled(&pool);
        Box::pin(async move {
            if stalled {
                Err("commits are not confirmed in time: no synchronous replica?".to_owned())
            } else {
                Ok(())
            }
        })
    }
}

/// A pooled connection that is closed, not returned to the pool, when the work using it is
/// abandoned by [`within`]. A statement timeout cannot end a wait that is not the server's (a
/// pgpool-II blocked by a failing backend or an online recovery holds its clients without a
/// word): such a connection would hang the next request that took it from the pool.
pub struct Lease {
    connection: Option<Connection>,
    bound: Option<Arc<Bound>>,
}

/// The state [`within`] shares with the leases taken by its work.
#[derive(Default)]
struct Bound {
    /// A connection was handed out: the work may have sent something.
    started: AtomicBool,
    /// The work ran out of time and is being dropped.
    abandoning: AtomicBool,
}

tokio::task_local! {
    static BOUND: Arc<Bound>;
}

impl Lease {
    pub async fn get(pool: &Pool) -> Result<Self, DbError> {
        let connection = pool.get().await?;
        let bound = BOUND.try_with(Arc::clone).ok();
        if let Some(bound) = &bound {
            bound.started.store(true, Ordering::Relaxed);
        }
        Ok(Self {
            connection: Some(connection),
            bound,
        })
    }
}

impl std::ops::Deref for Lease {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.connection
            .as_ref()
            .expect("a lease holds its connection until dropped")
    }
}

impl std::ops::DerefMut for Lease {
    fn deref_mut(&mut self) -> &mut Connection {
        self.connection
            .as_mut()
            .expect("a lease holds its connection until dropped")
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let abandoned = self
            .bound
            .as_ref()
            .is_some_and(|bound| bound.abandoning.load(Ordering::Relaxed));
        if abandoned && let Some(connection) = self.connection.take() {
            metrics::counter!("db_connections_abandoned_total").increment(1);
            // Out of the pool for good; dropping the client aborts its connection task,
            // which closes the socket.
            drop(Connection::take(connection));
        }
    }
}

/// What work [`within`] bounds, which decides what running out of time means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// Nothing changed: as good as unavailable (503, safe to repeat).
    Read,
    /// A write that may have committed before its answer was lost, once it had a connection:
    /// outcome unknown, never repeated blindly.
    Write,
}

/// An error a service's write may fail with, as far as it is the database's.
pub trait DatabaseFailure {
    fn database_error(&self) -> Option<&DbError>;
}

impl DatabaseFailure for DbError {
    fn database_error(&self) -> Option<&DbError> {
        Some(self)
    }
}

/// Attempts at a write that lost a race (a deadlock, or behind pgpool-II's snapshot isolation
/// the second of two transactions changing one row) and at one whose connection broke before
/// it committed (pgpool drops its clients when a backend fails).
const CONTENDED_ATTEMPTS: u32 = 10;
const UNAVAILABLE_ATTEMPTS: u32 = 2;

/// Runs a write transaction again after such a failure: it rolled back, so repeating it whole
/// is safe. A COMMIT that broke is never repeated (its outcome is unknown: 5004). Each attempt
/// is bounded by `deadline` ([`within`]); retries are counted in
/// `db_write_retries_total{service, reason}`.
pub async fn write_retrying<T, E, Fut>(
    deadline: std::time::Duration,
    service: &'static str,
    mut attempt: impl FnMut() -> Fut,
) -> Result<T, E>
where
    E: From<DbError> + DatabaseFailure,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let (mut contended, mut unavailable) = (0, 0);
    let mut pause = std::time::Duration::from_millis(2);
    loop {
        let outcome = within(deadline, Work::Write, attempt()).await;
        let reason = match outcome
            .as_ref()
            .err()
            .and_then(DatabaseFailure::database_error)
        {
            Some(DbError::Contended(_)) if contended + 1 < CONTENDED_ATTEMPTS => {
                contended += 1;
                "contended"
            }
            Some(DbError::Unavailable(_)) if unavailable + 1 < UNAVAILABLE_ATTEMPTS => {
                unavailable += 1;
                "unavailable"
            }
            _ => return outcome,
        };
        metrics::counter!("db_write_retries_total", "service" => service, "reason" => reason)
            .increment(1);
        // Jitter from the clock: racing writers should not retry in step.
        let jitter = u64::from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.subsec_nanos())
                % 1000,
        );
        tokio::time::sleep(pause + std::time::Duration::from_micros(jitter * 3)).await;
        pause = (pause * 2).min(std::time::Duration::from_millis(100));
    }
}

/// Runs `work` for at most `limit`. Past it the work is dropped, every [`Lease`] it held is
/// closed instead of pooled, and the caller gets [`DbError::Unavailable`], or for a write that
/// had a connection [`DbError::OutcomeUnknown`].
pub async fn within<T, E: From<DbError>>(
    limit: std::time::Duration,
    work: Work,
    future: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let bound = Arc::new(Bound::default());
    let mut future = Box::pin(BOUND.scope(Arc::clone(&bound), future));
    let mut deadline = std::pin::pin!(tokio::time::sleep(limit));
    let finished = std::future::poll_fn(|cx| {
        if let std::task::Poll::Ready(outcome) = future.as_mut().poll(cx) {
            return std::task::Poll::Ready(Some(outcome));
        }
        deadline.as_mut().poll(cx).map(|()| None)
    })
    .await;
    if let Some(outcome) = finished {
        return outcome;
    }
    bound.abandoning.store(true, Ordering::Relaxed);
    drop(future);
    let label = match work {
        Work::Read => "read",
        Work::Write => "write",
    };
    metrics::counter!("db_work_abandoned_total", "work" => label).increment(1);
    let message = format!(
        "no answer from the database within {} ms",
        limit.as_millis()
    );
    Err(
        if work == Work::Write && bound.started.load(Ordering::Relaxed) {
            DbError::OutcomeUnknown(message)
        } else {
            DbError::Unavailable(message)
        }
        .into(),
    )
}

impl From<tokio_postgres::Error> for DbError {
    fn from(error: tokio_postgres::Error) -> Self {
        if is_connectivity_error(&error) {
            DbError::Unavailable(error.to_string())
        } else if error.code() == Some(&SqlState::QUERY_CANCELED) {
            DbError::TimedOut(error.to_string())
        } else if error.code() == Some(&SqlState::T_R_SERIALIZATION_FAILURE)
            || error.code() == Some(&SqlState::T_R_DEADLOCK_DETECTED)
        {
            DbError::Contended(error.to_string())
        } else {
            DbError::Query(error)
        }
    }
}

impl From<PoolError> for DbError {
    fn from(error: PoolError) -> Self {
        match error {
            PoolError::Backend(error) => error.into(),
            other => DbError::Unavailable(other.to_string()),
        }
    }
}

/// The contract's answer to a database failure: 503 with `Retry-After` when the database is
/// away or a query ran out of time, 500 (logged) otherwise.
impl From<DbError> for crate::error::ApiError {
    fn from(error: DbError) -> Self {
        use crate::error::{ApiError, ErrorCode};
        match error {
            DbError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "database unavailable");
                ApiError::unavailable(
                    ErrorCode::DatabaseUnavailable,
                    "the database is unavailable; retry shortly",
                )
            }
            DbError::OutcomeUnknown(cause) => {
                tracing::warn!(error = %cause, "connection lost during commit");
                ApiError::unavailable(
                    ErrorCode::OutcomeUnknown,
                    "the database connection broke while saving the change: it may or may not \
                     have been saved; read it back before repeating it",
                )
            }
            DbError::Contended(cause) => {
                tracing::warn!(error = %cause, "transaction conflict not resolved by retries");
                ApiError::unavailable(
                    ErrorCode::Overloaded,
                    "too many concurrent changes to the same data; retry shortly",
                )
            }
            DbError::TimedOut(cause) => {
                tracing::warn!(error = %cause, "query cancelled by the statement timeout");
                ApiError::unavailable(
                    ErrorCode::Overloaded,
                    "the request took too long in the database; retry shortly",
                )
            }
            error => {
                tracing::error!(error = %error, "database error");
                ApiError::internal()
            }
        }
    }
}

impl DbError {
    /// The violated constraint's name, when this is a unique or foreign key violation.
    pub fn violated_constraint(&self) -> Option<&str> {
        let DbError::Query(error) = self else {
            return None;
        };
        let db = error.as_db_error()?;
        if *db.code() == SqlState::UNIQUE_VIOLATION || *db.code() == SqlState::FOREIGN_KEY_VIOLATION
        {
            db.constraint()
        } else {
            None
        }
    }
}

/// What pgpool-II answers (as XX000, an internal error) when a backend dies under a statement:
/// the statement did not complete there, and the next connection finds the backends pgpool
/// still has.
const PGPOOL_BACKEND_LOST: [&str; 5] = [
    "failed to read kind from backend",
    "backend throw an error message",
    "failed to create a backend connection",
    "do command failed",
    "kind mismatch among backends",
];

fn is_connectivity_error(error: &tokio_postgres::Error) -> bool {
    if error.is_closed() {
        return true;
    }
    if let Some(db) = error.as_db_error()
        && *db.code() == SqlState::INTERNAL_ERROR
        && PGPOOL_BACKEND_LOST
            .iter()
            .any(|message| db.message().to_ascii_lowercase().contains(message))
    {
        return true;
    }
    match error.code() {
        // No SQLSTATE: the failure is in the socket or protocol, not the statement.
        None => true,
        Some(code) => {
            code.code().starts_with("08")
                // Operator intervention (pgpool ends connections for an online recovery with
                // 57000), but for a statement timeout (57014), which is not a lost server.
                || (code.code().starts_with("57") && *code != SqlState::QUERY_CANCELED)
                || *code == SqlState::ADMIN_SHUTDOWN
                || *code == SqlState::CRASH_SHUTDOWN
                || *code == SqlState::CANNOT_CONNECT_NOW
                || *code == SqlState::TOO_MANY_CONNECTIONS
                // A server that stopped being the primary (a failover demoted it): another
                // connection finds the new one.
                || *code == SqlState::READ_ONLY_SQL_TRANSACTION
        }
    }
}

/// Session-level advisory lock key that serialises migrations across instances.
const MIGRATION_LOCK_KEY: i64 = 0x6167_6f72_615f_6d69; // "agora_mi"

/// Creates the database `database_url` names when its server does not have it yet (a service
/// with a database of its own on a shared server), through the server's `postgres` database.
pub async fn ensure_database(database_url: &str) -> anyhow::Result<()> {
    let config =
        tokio_postgres::Config::from_str(database_url).context("parsing a database URL")?;
    let Some(name) = config.get_dbname().map(str::to_owned) else {
        return Ok(());
    };
    let mut maintenance = config.clone();
    maintenance.dbname("postgres");
    let (client, connection) = maintenance
        .connect(NoTls)
        .await
        .with_context(|| format!("connecting to the server of database {name}"))?;
    let connection = tokio::spawn(connection);
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await?
        .is_some();
    if !exists {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        match client
            .batch_execute(&format!("CREATE DATABASE {quoted}"))
            .await
        {
            Ok(()) => {}
            // Another process made it meanwhile.
            Err(error) if error.code() == Some(&SqlState::DUPLICATE_DATABASE) => {}
            Err(error) => return Err(error).with_context(|| format!("creating database {name}")),
        }
    }
    drop(client);
    let _ = connection.await;
    Ok(())
}

/// Applies a service's embedded migrations on a dedicated connection. Safe to run from several
/// instances at once: they queue on an advisory lock and later ones find nothing to do.
pub async fn run_migrations(
    database_url: &str,
    runner: refinery::Runner,
) -> anyhow::Result<Vec<String>> {
    let (mut client, connection) = tokio_postgres::connect(database_url, NoTls)
        .await
        .context("connecting to PostgreSQL to migrate")?;
    let connection = tokio::spawn(connection);
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY])
        .await
        .context("taking the migration lock")?;
    let outcome = runner.set_grouped(false).run_async(&mut client).await;
    // The lock dies with the session anyway; unlocking just frees it sooner.
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY])
        .await;
    drop(client);
    let _ = connection.await;
    let report = outcome.context("applying migrations")?;
    Ok(report
        .applied_migrations()
        .iter()
        .map(|migration| migration.to_string())
        .collect())
}

/// A `/ready` check: a pooled connection answers `SELECT 1`.
pub fn readiness_check(
    pool: Pool,
) -> impl Fn() -> crate::http::CheckFuture + Send + Sync + 'static {
    move || {
        let pool = pool.clone();
        Box::pin(async move {
            let connection = pool
                .get()
                .await
                .map_err(|error| DbError::from(error).to_string())?;
            connection
                .simple_query("SELECT 1")
                .await
                .map(|_| ())
                .map_err(|error| DbError::from(error).to_string())
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A pool of one connection to the test stack's PostgreSQL, without a statement timeout:
    /// `pg_sleep` stands for a server that holds its client without a word.
    fn pool_of_one() -> Pool {
        let url = std::env::var("AGORA_TEST_DATABASE_URL")
            .expect("AGORA_TEST_DATABASE_URL is not set: run the tests with ./dev test");
        let config = DatabaseConfig {
            pool_size: 1,
            wait_timeout_ms: 200,
            statement_timeout_ms: 0,
            ..DatabaseConfig::for_url(url)
        };
        connect_pool(&config, "agora-test-deadline").expect("pool")
    }

    async fn sleep_on(pool: &Pool) -> Result<(), DbError> {
        let db = Lease::get(pool).await?;
        db.simple_query("SELECT pg_sleep(30)").await?;
        Ok(())
    }

    async fn answer(pool: &Pool) -> Result<i32, DbError> {
        let db = Lease::get(pool).await?;
        Ok(db.query_one("SELECT 7", &[]).await?.get(0))
    }

    #[tokio::test]
    async fn work_past_its_deadline_closes_its_connection_instead_of_pooling_it() {
        let pool = pool_of_one();
        let short = Duration::from_millis(300);

        let read = within(short, Work::Read, sleep_on(&pool)).await;
        assert!(matches!(read, Err(DbError::Unavailable(_))), "{read:?}");
        assert_eq!(pool.status().size, 0, "the hung connection left the pool");
        // The only slot is free again and the next request gets a fresh connection at once.
        let next = within(short, Work::Read, answer(&pool)).await;
        assert_eq!(next.expect("a fresh connection answers"), 7);

        let write = within(short, Work::Write, sleep_on(&pool)).await;
        assert!(
            matches!(write, Err(DbError::OutcomeUnknown(_))),
            "{write:?}"
        );
        assert_eq!(next_answer(&pool).await, 7);
    }

    async fn next_answer(pool: &Pool) -> i32 {
        within(Duration::from_secs(5), Work::Read, answer(pool))
            .await
            .expect("answer")
    }

    #[tokio::test]
    async fn a_write_that_never_got_a_connection_is_unavailable_not_unknown() {
        let pool = pool_of_one();
        let holder = Lease::get(&pool).await.expect("the only connection");
        let write = within(Duration::from_millis(100), Work::Write, answer(&pool)).await;
        assert!(matches!(write, Err(DbError::Unavailable(_))), "{write:?}");
        drop(holder);
        assert_eq!(pool.status().size, 1, "work in time returns its connection");
        assert_eq!(next_answer(&pool).await, 7);
    }
}
