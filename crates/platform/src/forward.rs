//! Forwarding requests to another agora process: a service's routes answered by a process
//! that does not run it (the social API answering `/dialog/*` for old clients while dialogs
//! run apart). The request id travels along, so one request is one id in every log.

use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;

use crate::error::{ApiError, ErrorCode};
use crate::request_id::{REQUEST_ID_HEADER, current_request_id};

/// Request headers passed on; everything else (hop-by-hop, host) stays.
const REQUEST_HEADERS: [HeaderName; 3] =
    [header::AUTHORIZATION, header::CONTENT_TYPE, header::ACCEPT];

/// Response headers passed back.
const RESPONSE_HEADERS: [HeaderName; 4] = [
    header::CONTENT_TYPE,
    header::RETRY_AFTER,
    header::WWW_AUTHENTICATE,
    header::CACHE_CONTROL,
];

#[derive(Clone)]
struct Target {
    client: reqwest::Client,
    base: String,
    service: &'static str,
}

/// Routes `paths` (axum patterns, any method) to the same paths under `base_url`.
pub fn router(
    paths: &[&str],
    base_url: &str,
    service: &'static str,
    timeout: Duration,
) -> anyhow::Result<Router> {
    let base = base_url.trim_end_matches('/').to_owned();
    reqwest::Url::parse(&base)
        .map_err(|error| anyhow::anyhow!("{base_url:?} is not a URL for {service}: {error}"))?;
    let target = Target {
        client: reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(2))
            .build()?,
        base,
        service,
    };
    let mut router = Router::new();
    for path in paths {
        router = router.route(path, any(forward));
    }
    Ok(router.with_state(target))
}

async fn forward(State(target): State<Target>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path_and_query = parts.uri.path_and_query().map_or("/", |path| path.as_str());
    // The body limit layer has bounded it already.
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(body) => body,
        Err(_) => {
            return ApiError::invalid_input("the request body could not be read").into_response();
        }
    };
    let mut outgoing = target
        .client
        .request(
            parts.method.clone(),
            format!("{}{path_and_query}", target.base),
        )
        .body(body);
    for name in &REQUEST_HEADERS {
        if let Some(value) = parts.headers.get(name) {
            outgoing = outgoing.header(name, value);
        }
    }
    if let Some(id) = current_request_id() {
        outgoing = outgoing.header(&REQUEST_ID_HEADER, id);
    }
    let answer = match outgoing.send().await {
        Ok(answer) => answer,
        Err(error) => {
            tracing::warn!(%error, service = target.service, "forwarding failed");
            metrics::counter!("forward_failures_total", "service" => target.service).increment(1);
            return ApiError::unavailable(
                ErrorCode::Overloaded,
                format!(
                    "the {} service is unavailable; retry shortly",
                    target.service
                ),
            )
            .into_response();
        }
    };
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut headers = HeaderMap::new();
    for name in &RESPONSE_HEADERS {
        if let Some(value) = answer.headers().get(name) {
            headers.insert(name.clone(), value.clone());
        }
    }
    let body: Bytes = match answer.bytes().await {
        Ok(body) => body,
        Err(error) => {
            tracing::warn!(%error, service = target.service, "forwarded answer cut off");
            return ApiError::unavailable(
                ErrorCode::Overloaded,
                format!(
                    "the {} service did not answer in full; retry shortly",
                    target.service
                ),
            )
            .into_response();
        }
    };
    (status, headers, body).into_response()
}
