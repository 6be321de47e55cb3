//! COMMIT with a deadline, and readiness that reports pools whose commits miss it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use deadpool_postgres::Pool;

use super::DbError;
use super::error::is_connectivity_error;

/// How long a COMMIT may take, in milliseconds: the statement timeout of the last pool made
/// with one (`AGORA_DB_STATEMENT_TIMEOUT_MS`). The statement timeout itself does not cover a
/// COMMIT waiting for a synchronous replica, which waits as long as no replica confirms.
pub(super) static COMMIT_DEADLINE_MS: AtomicU64 = AtomicU64::new(5_000);

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
