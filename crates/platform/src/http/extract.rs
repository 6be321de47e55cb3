//! Extractors whose rejections are 4xx in the error envelope, never axum's plain text.

use std::time::Duration;

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::RequestBounds;
use crate::error::{ApiError, ErrorCode};

/// A JSON body whose rejections are 400 (or 413) in the error envelope.
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let timeout = request
            .extensions()
            .get::<RequestBounds>()
            .map_or(DEFAULT_BODY_TIMEOUT, |bounds| bounds.body_timeout);
        match tokio::time::timeout(timeout, Json::<T>::from_request(request, state)).await {
            Ok(Ok(Json(value))) => Ok(JsonBody(value)),
            Ok(Err(rejection)) => Err(json_rejection(rejection)),
            Err(_) => Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                ErrorCode::RequestTimeout,
                format!(
                    "the request body did not arrive within {} s",
                    timeout.as_secs()
                ),
            )
            .closing_connection()),
        }
    }
}

const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);

fn json_rejection(rejection: JsonRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            "request body is too large",
        );
    }
    let message = match rejection {
        JsonRejection::MissingJsonContentType(_) => {
            "expected a JSON body with Content-Type: application/json".to_owned()
        }
        other => other.body_text(),
    };
    ApiError::invalid_input(message)
}

/// Path parameters whose rejections are 400 in the error envelope.
pub struct PathParams<T>(pub T);

impl<S, T> FromRequestParts<S> for PathParams<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| PathParams(value))
            .map_err(|rejection: PathRejection| ApiError::invalid_input(rejection.body_text()))
    }
}

/// Query parameters whose rejections are 400 in the error envelope.
pub struct QueryParams<T>(pub T);

impl<S, T> FromRequestParts<S> for QueryParams<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(query) = parts.uri.query()
            && !decodes_to_utf8(query)
        {
            return Err(ApiError::invalid_input(
                "the query string is not valid percent-encoded UTF-8",
            ));
        }
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| QueryParams(value))
            .map_err(|rejection: QueryRejection| ApiError::invalid_input(rejection.body_text()))
    }
}

/// Whether a form-encoded body (`application/x-www-form-urlencoded`) is UTF-8 and decodes to
/// UTF-8: the form extractor decodes lossily too, so a web form would store U+FFFD where the
/// API answers 400.
pub fn form_decodes_to_utf8(body: &[u8]) -> bool {
    std::str::from_utf8(body).is_ok_and(decodes_to_utf8)
}

/// Whether a form-encoded query decodes to UTF-8. The query extractor decodes lossily, turning
/// invalid bytes into U+FFFD; we would rather say the input is wrong, as paths do.
fn decodes_to_utf8(query: &str) -> bool {
    let bytes = query.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(high), Some(low)) => {
                    decoded.push((high * 16 + low) as u8);
                    i += 3;
                    continue;
                }
                _ => decoded.push(b'%'),
            },
            b'&' | b'=' => {
                // Each key and value is decoded on its own; check them one by one.
                if std::str::from_utf8(&decoded).is_err() {
                    return false;
                }
                decoded.clear();
            }
            other => decoded.push(other),
        }
        i += 1;
    }
    std::str::from_utf8(&decoded).is_ok()
}
