use std::borrow::Cow;

use agora_platform::db::DbError;
use agora_platform::error::{ApiError, ErrorCode};
use agora_platform::session::AuthError;
use axum::response::{IntoResponse, Response};

/// Every way a dialogs request can fail, mapped to the contract in one place.
#[derive(Debug, thiserror::Error)]
pub enum DialogsError {
    #[error("{0}")]
    InvalidInput(Cow<'static, str>),
    #[error(transparent)]
    Unauthorized(#[from] AuthError),
    #[error("{0}")]
    NotFound(&'static str),
    /// The shard server that holds the dialog is unreachable: only its dialogs fail.
    #[error("shard server {server} unavailable: {error}")]
    ShardUnavailable { server: String, error: DbError },
    /// The dialog's logical shard is being moved and did not settle within the wait.
    #[error("the dialog is being moved to another server")]
    Moving,
    /// No shard map yet: no shard servers were configured when the schema was migrated.
    #[error("dialogs are not set up")]
    NotSetUp,
    /// Redis, where the unread counters are.
    #[error(transparent)]
    Cache(#[from] agora_platform::cache::CacheError),
    /// The main database (users, the shard map).
    #[error(transparent)]
    Database(#[from] DbError),
}

impl DialogsError {
    pub fn invalid(message: impl Into<Cow<'static, str>>) -> Self {
        DialogsError::InvalidInput(message.into())
    }

    pub(crate) fn on_shard(server: &str, error: DbError) -> Self {
        match error {
            DbError::Unavailable(_) | DbError::TimedOut(_) => DialogsError::ShardUnavailable {
                server: server.to_owned(),
                error,
            },
            error => DialogsError::Database(error),
        }
    }
}

impl IntoResponse for DialogsError {
    fn into_response(self) -> Response {
        match self {
            DialogsError::InvalidInput(message) => ApiError::invalid_input(message).into_response(),
            DialogsError::Unauthorized(error) => error.into_response(),
            DialogsError::NotFound(message) => ApiError::not_found(message).into_response(),
            DialogsError::ShardUnavailable { server, error } => {
                tracing::warn!(%server, %error, "dialog shard server unavailable");
                metrics::counter!("dialog_shard_unavailable_total", "server" => server)
                    .increment(1);
                ApiError::unavailable(
                    ErrorCode::DatabaseUnavailable,
                    "the server holding this dialog is unavailable; retry shortly",
                )
                .into_response()
            }
            DialogsError::Moving => ApiError::unavailable(
                ErrorCode::Overloaded,
                "the dialog is being moved to another server; retry shortly",
            )
            .into_response(),
            DialogsError::NotSetUp => ApiError::unavailable(
                ErrorCode::DatabaseUnavailable,
                "dialogs are not set up on this deployment: no shard servers \
                 (AGORA_DIALOG_SHARDS, then agora migrate)",
            )
            .into_response(),
            DialogsError::Cache(error) => {
                tracing::warn!(%error, "unread counters unavailable");
                ApiError::unavailable(
                    ErrorCode::CacheUnavailable,
                    "unread counters are unavailable; retry shortly",
                )
                .into_response()
            }
            DialogsError::Database(error) => ApiError::from(error).into_response(),
        }
    }
}
