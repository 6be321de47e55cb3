use std::borrow::Cow;

use agora_platform::db::DbError;
use agora_platform::error::{ApiError, ErrorCode};
use agora_platform::session::AuthError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Every way a shop request can fail, mapped to the contract's envelope in one place.
#[derive(Debug, thiserror::Error)]
pub enum ShopError {
    #[error("{0}")]
    InvalidInput(Cow<'static, str>),
    #[error(transparent)]
    Unauthorized(#[from] AuthError),
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0}")]
    NotFound(&'static str),
    /// The request conflicts with the current state: not enough stock, an order that cannot
    /// move that way, a customer record that exists.
    #[error("{0}")]
    Conflict(Cow<'static, str>),
    /// An `Idempotency-Key` already used with another request.
    #[error("this Idempotency-Key was used with another request")]
    KeyReused,
    #[error(transparent)]
    Cache(#[from] agora_platform::cache::CacheError),
    #[error(transparent)]
    Database(#[from] DbError),
}

impl ShopError {
    pub fn invalid(message: impl Into<Cow<'static, str>>) -> Self {
        ShopError::InvalidInput(message.into())
    }

    pub fn conflict(message: impl Into<Cow<'static, str>>) -> Self {
        ShopError::Conflict(message.into())
    }
}

impl agora_platform::db::DatabaseFailure for ShopError {
    fn database_error(&self) -> Option<&DbError> {
        match self {
            ShopError::Database(error) => Some(error),
            _ => None,
        }
    }
}

impl From<tokio_postgres::Error> for ShopError {
    fn from(error: tokio_postgres::Error) -> Self {
        ShopError::Database(error.into())
    }
}

impl From<deadpool_postgres::PoolError> for ShopError {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        ShopError::Database(error.into())
    }
}

impl IntoResponse for ShopError {
    fn into_response(self) -> Response {
        match self {
            ShopError::InvalidInput(message) => ApiError::invalid_input(message).into_response(),
            ShopError::Unauthorized(error) => error.into_response(),
            ShopError::Forbidden(message) => ApiError::forbidden(message).into_response(),
            ShopError::NotFound(message) => ApiError::not_found(message).into_response(),
            ShopError::Conflict(message) => {
                ApiError::new(StatusCode::CONFLICT, ErrorCode::Conflict, message).into_response()
            }
            ShopError::KeyReused => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::IdempotencyKeyReused,
                "this Idempotency-Key was already used with another request; use a new key",
            )
            .into_response(),
            ShopError::Cache(error) => {
                tracing::warn!(%error, "cart store unavailable");
                ApiError::unavailable(
                    ErrorCode::CacheUnavailable,
                    "carts are unavailable; retry shortly",
                )
                .into_response()
            }
            ShopError::Database(error) => ApiError::from(error).into_response(),
        }
    }
}
