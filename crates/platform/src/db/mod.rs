//! The PostgreSQL pool, migrations, and the line between "the database is unavailable" (503,
//! retry) and "this query failed" (a bug or a constraint, never retried blindly).

mod bounded;
mod commit;
mod error;
mod migrate;
mod query;

use std::str::FromStr;
use std::sync::atomic::Ordering;

use anyhow::Context;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use crate::config::DatabaseConfig;

pub use bounded::{DatabaseFailure, Lease, Work, within, write_retrying};
pub use commit::{commit, commit_check};
pub use deadpool_postgres::{Object as Connection, Pool as DbPool};
pub use error::DbError;
pub use migrate::{ensure_database, run_migrations};
pub use query::{Params, execute, query, query_column, query_one, query_opt};

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
        commit::COMMIT_DEADLINE_MS.store(config.statement_timeout_ms, Ordering::Relaxed);
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
