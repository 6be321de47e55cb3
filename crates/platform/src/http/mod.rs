//! HTTP plumbing shared by services: the layers every router gets (request id, access log and
//! metrics by matched route, bounds, panics, fallbacks), extractors whose rejections speak the
//! error envelope, session tokens in headers and cookies, ops endpoints, and serving.

mod extract;
mod ops;
mod serve;
mod tokens;

pub use extract::{JsonBody, PathParams, QueryParams, form_decodes_to_utf8};
pub use ops::{CheckFn, CheckFuture, OpsEndpoints, health_router};
pub use serve::{bind, serve_service, shutdown_signal};
pub use tokens::{
    SECURE_SESSION_COOKIE, SESSION_COOKIE, bearer_token, cookie, session_cookie_name, session_token,
};

use std::any::Any;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use tracing::Instrument;

use crate::config::HttpConfig;
use crate::error::{ApiError, ErrorCode};
use crate::request_id::{REQUEST_ID, REQUEST_ID_HEADER, request_id_for};

/// The method as a metric label: the standard ones by name, anything else as `other`, so
/// made-up methods cannot grow `/metrics` without bound.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

/// Outermost middleware: request id, span, access log, and request metrics.
async fn observe(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = request_id_for(&request);
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let span =
        tracing::info_span!("request", request_id = %request_id, method = %method, path = %path);
    let in_flight = metrics::gauge!("http_requests_in_flight");
    in_flight.increment(1.0);
    let mut response = REQUEST_ID
        .scope(
            request_id.clone(),
            next.run(request).instrument(span.clone()),
        )
        .await;
    in_flight.decrement(1.0);

    let route = response
        .extensions()
        .get::<MatchedPath>()
        .map(|matched| matched.as_str().to_owned())
        // Unmatched paths share one label so scanners cannot blow up metric cardinality.
        .unwrap_or_else(|| "unmatched".to_owned());
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    let method_label = method_label(&method);
    metrics::counter!("http_requests_total", "method" => method_label, "route" => route.clone(), "status" => status.to_string())
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method_label, "route" => route.clone())
        .record(elapsed.as_secs_f64());
    let _entered = span.enter();
    let latency_us = elapsed.as_micros() as u64;
    if status >= 500 {
        tracing::error!(status, route, latency_us, "request failed");
    } else if route == "/metrics" || route == "/health" || route == "/ready" {
        tracing::debug!(status, route, latency_us, "request finished");
    } else if crate::telemetry::wants_access_line(status, elapsed) {
        tracing::info!(status, route, latency_us, "request finished");
    }
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        headers.insert(REQUEST_ID_HEADER.clone(), value);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// Request-wide bounds the extractors read (the server loop bounds the head).
#[derive(Clone, Copy)]
struct RequestBounds {
    body_timeout: Duration,
    max_uri_bytes: usize,
}

/// Refuses an over-long URI with 414 before routing, and hands the bounds to the extractors.
async fn bound_request(
    axum::extract::State(bounds): axum::extract::State<RequestBounds>,
    mut request: Request,
    next: Next,
) -> Response {
    let uri = request.uri();
    let uri_bytes = uri.path_and_query().map_or(0, |p| p.as_str().len());
    if uri_bytes > bounds.max_uri_bytes {
        return ApiError::new(
            StatusCode::URI_TOO_LONG,
            ErrorCode::UriTooLong,
            format!("the URI is longer than {} bytes", bounds.max_uri_bytes),
        )
        .into_response();
    }
    request.extensions_mut().insert(bounds);
    next.run(request).await
}

/// Runs after routing, so it sees the matched route and hands it to [`observe`].
async fn remember_route(request: Request, next: Next) -> Response {
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let mut response = next.run(request).await;
    if let Some(matched) = matched {
        response.extensions_mut().insert(matched);
    }
    response
}

fn panic_to_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("non-string panic payload");
    tracing::error!(panic = detail, "handler panicked");
    ApiError::internal().into_response()
}

/// Renders an error page for a browser (the web front end's look) for a status.
pub type PageFallback = Arc<dyn Fn(StatusCode) -> Response + Send + Sync>;

/// Whether the client asked for HTML (a browser navigating), not JSON.
pub fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

fn for_browser(
    pages: Option<&PageFallback>,
    headers: &HeaderMap,
    status: StatusCode,
) -> Option<Response> {
    pages
        .filter(|_| wants_html(headers))
        .map(|page| page(status))
}

async fn unknown_route(pages: Option<PageFallback>, headers: HeaderMap) -> Response {
    for_browser(pages.as_ref(), &headers, StatusCode::NOT_FOUND)
        .unwrap_or_else(|| ApiError::not_found("no such route").into_response())
}

async fn wrong_method(pages: Option<PageFallback>, headers: HeaderMap) -> Response {
    for_browser(pages.as_ref(), &headers, StatusCode::METHOD_NOT_ALLOWED).unwrap_or_else(|| {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::MethodNotAllowed,
            "method not allowed on this route",
        )
        .into_response()
    })
}

/// Wraps a service's complete router with the shared layers. Call it last, after every route
/// (including ops routes) is merged, so each route gets its label. Unknown paths and methods
/// are answered by `pages` when a browser asks for HTML, with the JSON error envelope otherwise.
pub fn finish_router(router: Router, config: &HttpConfig, pages: Option<PageFallback>) -> Router {
    let not_found = pages.clone();
    router
        .route_layer(middleware::from_fn(remember_route))
        .fallback(move |headers: HeaderMap| unknown_route(not_found, headers))
        .method_not_allowed_fallback(move |headers: HeaderMap| wrong_method(pages, headers))
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(CatchPanicLayer::custom(panic_to_response))
        .layer(middleware::from_fn_with_state(
            RequestBounds {
                body_timeout: config.body_timeout(),
                max_uri_bytes: config.max_uri_bytes,
            },
            bound_request,
        ))
        .layer(middleware::from_fn(observe))
}
