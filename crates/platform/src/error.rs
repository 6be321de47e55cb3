//! The one error envelope every agora service answers with.
//!
//! The contract's 5xx body is `{message, request_id, code}`; 4xx bodies have no schema there, and
//! we send the same shape so clients need one parser. `code` classifies the failure for support
//! (see `docs/errors.md`); `request_id` matches the `x-request-id` header and the logs.

use std::borrow::Cow;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::request_id::current_request_id;

/// Stable, documented error classes. Numbers never change meaning once released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum ErrorCode {
    InvalidInput = 1000,
    Unauthorized = 1001,
    Forbidden = 1002,
    NotFound = 1003,
    PayloadTooLarge = 1004,
    MethodNotAllowed = 1005,
    HeadersTooLarge = 1006,
    UriTooLong = 1007,
    RequestTimeout = 1008,
    TooManyRequests = 1009,
    Conflict = 1010,
    IdempotencyKeyReused = 1011,
    Internal = 5000,
    DatabaseUnavailable = 5001,
    Overloaded = 5002,
    CacheUnavailable = 5003,
    OutcomeUnknown = 5004,
}

/// A response-ready error: status, class, human message and an optional retry hint.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: Cow<'static, str>,
    pub retry_after_secs: Option<u32>,
    /// Ask the client to close the connection (its request was not read to the end).
    pub close_connection: bool,
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after_secs: None,
            close_connection: false,
        }
    }

    pub fn closing_connection(self) -> Self {
        Self {
            close_connection: true,
            ..self
        }
    }

    /// Too many attempts: retry after `secs`.
    pub fn too_many_requests(message: impl Into<Cow<'static, str>>, secs: u32) -> Self {
        Self {
            retry_after_secs: Some(secs.max(1)),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::TooManyRequests,
                message,
            )
        }
    }

    pub fn invalid_input(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidInput, message)
    }

    pub fn unauthorized(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message)
    }

    pub fn forbidden(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, message)
    }

    pub fn not_found(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message)
    }

    /// A dependency is down or saturated: the client should retry after a short pause.
    pub fn unavailable(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            retry_after_secs: Some(1),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
        }
    }

    /// An unexpected failure. The cause goes to the log, never to the client.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "internal error; the request id identifies it in the server logs",
        )
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<String>,
    code: u16,
}

/// The envelope as JSON text, for answers written below the router (the server loop).
pub fn envelope_json(code: ErrorCode, message: &str, request_id: Option<String>) -> String {
    serde_json::to_string(&ErrorBody {
        message,
        request_id,
        code: code as u16,
    })
    .expect("serialising the error envelope cannot fail")
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            message: &self.message,
            request_id: current_request_id(),
            code: self.code as u16,
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.close_connection {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}
