//! Work with a time limit, whose connections are closed rather than pooled when it is
//! abandoned, and write transactions repeated after failures that rolled them back.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use deadpool_postgres::Pool;

use super::{Connection, DbError};

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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::DatabaseConfig;
    use crate::db::connect_pool;

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
