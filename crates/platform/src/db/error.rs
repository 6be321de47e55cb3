//! What a database failure means for the client: unavailable (503, retry), timed out,
//! contended (repeat the transaction), unknown outcome (5004), or a failed query (500).

use deadpool_postgres::PoolError;
use tokio_postgres::error::SqlState;

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

pub(super) fn is_connectivity_error(error: &tokio_postgres::Error) -> bool {
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
