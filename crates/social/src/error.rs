use std::borrow::Cow;

use agora_platform::cache::CacheError;
use agora_platform::credentials::HashingError;
use agora_platform::db::DbError;
use agora_platform::error::{ApiError, ErrorCode};
use agora_platform::session::AuthError;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// Every way a social network request can fail, mapped to the contract in one place.
#[derive(Debug, thiserror::Error)]
pub enum SocialError {
    #[error("{0}")]
    InvalidInput(Cow<'static, str>),
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0}")]
    NotFound(&'static str),
    /// Too many failed logins: retry after this many seconds.
    #[error("too many failed logins")]
    TooManyAttempts(u32),
    /// The user holds as many live sockets on this instance as one user may.
    #[error("too many live sockets")]
    TooManySockets(usize),
    #[error(transparent)]
    Database(#[from] DbError),
    #[error(transparent)]
    Hashing(#[from] HashingError),
    /// Only where no fallback exists; reads fall back to the database.
    #[error(transparent)]
    Cache(#[from] CacheError),
}

impl SocialError {
    pub fn invalid(message: impl Into<Cow<'static, str>>) -> Self {
        SocialError::InvalidInput(message.into())
    }
}

impl From<tokio_postgres::Error> for SocialError {
    fn from(error: tokio_postgres::Error) -> Self {
        SocialError::Database(error.into())
    }
}

impl From<deadpool_postgres::PoolError> for SocialError {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        SocialError::Database(error.into())
    }
}

impl From<AuthError> for SocialError {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::Missing => SocialError::Unauthorized("missing bearer token"),
            AuthError::Invalid => SocialError::Unauthorized("invalid or expired token"),
            AuthError::Database(error) => SocialError::Database(error),
        }
    }
}

impl From<ApiError> for SocialError {
    fn from(error: ApiError) -> Self {
        SocialError::InvalidInput(error.message)
    }
}

impl IntoResponse for SocialError {
    fn into_response(self) -> Response {
        let api_error = match self {
            SocialError::InvalidInput(message) => ApiError::invalid_input(message),
            SocialError::Unauthorized(message) => {
                let mut response = ApiError::unauthorized(message).into_response();
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                return response;
            }
            SocialError::Forbidden(message) => ApiError::forbidden(message),
            SocialError::NotFound(message) => ApiError::not_found(message),
            SocialError::TooManyAttempts(secs) => ApiError::too_many_requests(
                format!("too many failed logins; retry in {secs} s"),
                secs,
            ),
            SocialError::TooManySockets(limit) => ApiError::too_many_requests(
                format!(
                    "this user already holds {limit} live feed sockets, the most allowed; \
                     close one before opening another"
                ),
                5,
            ),
            SocialError::Database(error) => error.into(),
            SocialError::Hashing(HashingError::Overloaded) => {
                tracing::warn!("password hashing queue is full");
                ApiError::unavailable(
                    ErrorCode::Overloaded,
                    "too many logins at once; retry shortly",
                )
            }
            SocialError::Hashing(error) => {
                tracing::error!(error = %error, "password hashing failed");
                ApiError::internal()
            }
            SocialError::Cache(error @ CacheError::Unavailable(_)) => {
                agora_platform::cache::warn_unavailable("a request answered 503", &error);
                ApiError::unavailable(
                    ErrorCode::CacheUnavailable,
                    "the cache is unavailable; retry shortly",
                )
            }
            SocialError::Cache(error) => {
                tracing::error!(error = %error, "redis error");
                ApiError::internal()
            }
        };
        api_error.into_response()
    }
}
