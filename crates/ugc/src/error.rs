use std::borrow::Cow;

use agora_platform::db::{DatabaseFailure, DbError};
use agora_platform::error::ApiError;
use agora_platform::session::AuthError;
use axum::response::{IntoResponse, Response};

/// Every way a UGC request can fail, mapped to the contract's envelope in one place.
#[derive(Debug, thiserror::Error)]
pub enum UgcError {
    #[error("{0}")]
    InvalidInput(Cow<'static, str>),
    #[error(transparent)]
    Unauthorized(#[from] AuthError),
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0}")]
    NotFound(&'static str),
    #[error(transparent)]
    Database(#[from] DbError),
}

impl UgcError {
    pub fn invalid(message: impl Into<Cow<'static, str>>) -> Self {
        UgcError::InvalidInput(message.into())
    }
}

impl DatabaseFailure for UgcError {
    fn database_error(&self) -> Option<&DbError> {
        match self {
            UgcError::Database(error) => Some(error),
            _ => None,
        }
    }
}

impl IntoResponse for UgcError {
    fn into_response(self) -> Response {
        match self {
            UgcError::InvalidInput(message) => ApiError::invalid_input(message).into_response(),
            UgcError::Unauthorized(error) => error.into_response(),
            UgcError::Forbidden(message) => ApiError::forbidden(message).into_response(),
            UgcError::NotFound(message) => ApiError::not_found(message).into_response(),
            UgcError::Database(error) => ApiError::from(error).into_response(),
        }
    }
}
