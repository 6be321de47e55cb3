//! HTTP plumbing shared by services: request ids, access logs and metrics by matched route,
//! extractors whose rejections speak the error envelope, ops endpoints, and graceful serving.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, MatchedPath, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tracing::Instrument;

use crate::config::{HttpConfig, OpsListen};
use crate::error::{ApiError, ErrorCode};
use crate::server::{Draining, Endpoint};
use crate::telemetry;

pub static REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    static REQUEST_ID: Arc<str>;
}

/// The id of the request being handled, if called inside one.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(|id| id.to_string()).ok()
}

/// A caller's id is kept when it is short and printable, so traces join across services;
/// otherwise we make one: a per-process random prefix and a counter, unique without a syscall.
fn request_id_for(request: &Request) -> Arc<str> {
    if let Some(incoming) = request.headers().get(&REQUEST_ID_HEADER)
        && let Ok(text) = incoming.to_str()
        && !text.is_empty()
        && text.len() <= 64
        && text.bytes().all(|b| b.is_ascii_graphic())
    {
        return Arc::from(text);
    }
    Arc::from(fresh_request_id())
}

/// A new request id.
pub fn fresh_request_id() -> String {
    static PREFIX: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(|| {
        let mut bytes = [0u8; 4];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
        u32::from_le_bytes(bytes)
    });
    format!(
        "{prefix:08x}-{:010x}",
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

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

/// The client's IP address: the peer of the TCP connection, or what a trusted proxy says it
/// forwarded (see [`client_ip`]).
pub struct ClientAddress(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let resolved = parts.extensions.get::<ClientIp>().map(|client| client.0);
        Ok(ClientAddress(resolved.or_else(|| {
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|info| info.0.ip())
        })))
    }
}

/// The client address the server loop resolved for a request.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub std::net::IpAddr);

/// Who sent a request. A peer that is not a trusted proxy is the client, whatever its headers
/// say. Behind trusted proxies, `X-Forwarded-For` is read from the right, since each proxy
/// appends the address it heard from: the first entry no trusted proxy wrote is the client.
/// Entries to its left are whatever the client chose to send, and are never believed.
pub fn client_ip(
    peer: std::net::IpAddr,
    headers: &HeaderMap,
    trusted: &[std::net::IpAddr],
) -> std::net::IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let mut client = peer;
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .collect::<Vec<_>>();
    for entry in forwarded.into_iter().rev() {
        let Ok(address) = entry.trim().parse::<std::net::IpAddr>() else {
            // A garbled hop: what lies left of it cannot be attributed to anyone.
            break;
        };
        client = address;
        if !trusted.contains(&address) {
            break;
        }
    }
    client
}

/// The bearer token of a request, if it carries one.
pub fn bearer_token(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The cookie a browser's session token travels in (the web front end sets it at sign-in).
pub const SESSION_COOKIE: &str = "agora_session";

/// The same cookie over HTTPS. Browsers accept a `__Host-` cookie only from this very host
/// over HTTPS (no `Domain`, `Path=/`, `Secure`), so a sibling subdomain or a man in the middle
/// of a plain-HTTP request cannot plant one: over HTTPS only this name is trusted.
pub const SECURE_SESSION_COOKIE: &str = "__Host-agora_session";

/// The session cookie's name for a site served over HTTPS (`secure`) or not.
pub fn session_cookie_name(secure: bool) -> &'static str {
    if secure {
        SECURE_SESSION_COOKIE
    } else {
        SESSION_COOKIE
    }
}

/// The value of cookie `name`, if the request carries it.
pub fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        // Pair by pair: another site on the same host name may set a cookie that is not
        // ASCII, and it must not hide ours.
        .flat_map(|value| value.as_bytes().split(|byte| *byte == b';'))
        .filter_map(|pair| std::str::from_utf8(pair).ok())
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim_matches('"'))
        .filter(|value| !value.is_empty())
}

/// The session token of a request: its bearer token, or else its session cookie when the
/// request comes from a page of this server. Browsers attach cookies to requests other sites
/// start, so a cookie counts only with an `Origin` naming this host (every WebSocket handshake
/// and every cross-origin fetch carries one); forms have their own CSRF check.
pub fn session_token(parts: &Parts) -> Option<&str> {
    if let Some(token) = bearer_token(parts) {
        return Some(token);
    }
    let origin = parts.headers.get(header::ORIGIN)?.to_str().ok()?;
    let host = match parts.headers.get(header::HOST) {
        Some(host) => host.to_str().ok()?,
        None => parts.uri.authority()?.as_str(),
    };
    if !same_authority(origin, host) {
        return None;
    }
    // Only this host over HTTPS can set the __Host- cookie, so it counts whatever the page's
    // scheme (a site marked secure by configuration may still be reached over plain HTTP on
    // localhost); the plain one counts only for a page served over plain HTTP.
    let http = origin
        .get(..7)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("http://"));
    cookie(parts, SECURE_SESSION_COOKIE)
        .or_else(|| http.then(|| cookie(parts, SESSION_COOKIE)).flatten())
}

/// Whether an `Origin` (`scheme://host[:port]`) names the same place as a `Host` header: host
/// names compared without case, a scheme's default port the same as none.
fn same_authority(origin: &str, host: &str) -> bool {
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => ":80",
        "https" => ":443",
        _ => return false,
    };
    let normal = |authority: &str| {
        let lower = authority.to_ascii_lowercase();
        lower
            .strip_suffix(default_port)
            .map(str::to_owned)
            .unwrap_or(lower)
    };
    normal(authority) == normal(host)
}

pub type CheckFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
pub type CheckFn = Arc<dyn Fn() -> CheckFuture + Send + Sync>;
type ScrapeHook = Arc<dyn Fn() + Send + Sync>;

/// `/health` (the process answers), `/ready` (its dependencies answer) and `/metrics`.
#[derive(Clone, Default)]
pub struct OpsEndpoints {
    /// (name, check, critical): a failing critical check makes `/ready` answer 503; a failing
    /// optional one (a cache with a fallback) is listed under `degraded` with a 200.
    checks: Vec<(&'static str, CheckFn, bool)>,
    scrape_hooks: Vec<ScrapeHook>,
    /// Extra sections of `/ready` (name, what to show): state that informs without deciding.
    details: Vec<(&'static str, DetailFn)>,
}

type DetailFn = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

/// How long one readiness check may take; a slow dependency counts as not ready.
const READINESS_TIMEOUT: Duration = Duration::from_secs(1);

impl OpsEndpoints {
    pub fn check(
        mut self,
        name: &'static str,
        check: impl Fn() -> CheckFuture + Send + Sync + 'static,
    ) -> Self {
        self.checks.push((name, Arc::new(check), true));
        self
    }

    /// A dependency the service can run without, more slowly or with less.
    pub fn optional_check(
        mut self,
        name: &'static str,
        check: impl Fn() -> CheckFuture + Send + Sync + 'static,
    ) -> Self {
        self.checks.push((name, Arc::new(check), false));
        self
    }

    /// Another service's checks and hooks beside these (checks answer under their own names).
    pub fn merge(mut self, other: OpsEndpoints) -> Self {
        self.checks.extend(other.checks);
        self.scrape_hooks.extend(other.scrape_hooks);
        self.details.extend(other.details);
        self
    }

    /// A section of `/ready`'s body under `name`, from `detail` at each request.
    pub fn detail(
        mut self,
        name: &'static str,
        detail: impl Fn() -> serde_json::Value + Send + Sync + 'static,
    ) -> Self {
        self.details.push((name, Arc::new(detail)));
        self
    }

    /// Runs `hook` before each scrape, to refresh gauges that are cheaper to read than to track.
    pub fn on_scrape(mut self, hook: impl Fn() + Send + Sync + 'static) -> Self {
        self.scrape_hooks.push(Arc::new(hook));
        self
    }

    /// `/ready` and `/metrics`. `/ready` answers 503 once `draining` is set (shutdown began).
    pub fn router(self, draining: Draining) -> Router {
        // Install the recorder now: metrics recorded before installation would be lost.
        telemetry::prometheus();
        let this = Arc::new(self);
        let for_ready = this.clone();
        Router::new()
            .route(
                "/ready",
                get(move || readiness(for_ready.clone(), draining.clone())),
            )
            .route("/metrics", get(move || metrics_text(this.clone())))
    }
}

/// `/health`: the process answers. It stays on the API listener for load balancers (and is the
/// ceiling the benchmarks measure against).
pub fn health_router() -> Router {
    Router::new().route("/health", get(|| async { Json(json!({"status": "ok"})) }))
}

async fn readiness(ops: Arc<OpsEndpoints>, draining: Draining) -> Response {
    if draining.is_draining() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
            Json(json!({"status": "shutting down"})),
        )
            .into_response();
    }
    let mut checks = serde_json::Map::new();
    let mut ready = true;
    let mut degraded = Vec::new();
    for (name, check, critical) in &ops.checks {
        let outcome = match tokio::time::timeout(READINESS_TIMEOUT, check()).await {
            Ok(Ok(())) => "ok".to_owned(),
            Ok(Err(error)) => error,
            Err(_) => format!("no answer within {} ms", READINESS_TIMEOUT.as_millis()),
        };
        if outcome != "ok" {
            if *critical {
                ready = false;
            } else {
                degraded.push(*name);
            }
        }
        checks.insert((*name).to_owned(), outcome.into());
    }
    let mut body = json!({"status": if ready { "ready" } else { "degraded" }, "checks": checks});
    if !degraded.is_empty() {
        body["degraded"] = json!(degraded);
    }
    for (name, detail) in &ops.details {
        body[*name] = detail();
    }
    let body = Json(body);
    if ready {
        (StatusCode::OK, body).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
            body,
        )
            .into_response()
    }
}

async fn metrics_text(ops: Arc<OpsEndpoints>) -> Response {
    for hook in &ops.scrape_hooks {
        hook();
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        telemetry::prometheus().render(),
    )
        .into_response()
}

pub async fn bind(config: &HttpConfig) -> anyhow::Result<TcpListener> {
    TcpListener::bind(config.listen).await.map_err(|error| {
        anyhow::anyhow!("cannot listen on {} (AGORA_LISTEN): {error}", config.listen)
    })
}

/// Serves a service's API router (already passed through [`finish_router`] by the caller's
/// `api` function) and its operations endpoints, on one listener or two as configured, until
/// `shutdown` resolves.
pub async fn serve_service(
    listener: TcpListener,
    api: Router,
    ops: OpsEndpoints,
    config: &HttpConfig,
    pages: Option<PageFallback>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let draining = Draining::default();
    let ops = ops.router(draining.clone());
    let endpoints = match config.ops_listen {
        OpsListen::Api => vec![Endpoint {
            listener,
            router: finish_router(api.merge(ops), config, pages),
        }],
        OpsListen::Address(address) => {
            let ops_listener = TcpListener::bind(address).await.map_err(|error| {
                anyhow::anyhow!("cannot listen on {address} (AGORA_OPS_LISTEN): {error}")
            })?;
            tracing::info!(address = %ops_listener.local_addr()?, "operations endpoints listening");
            vec![
                Endpoint {
                    listener,
                    router: finish_router(api, config, pages),
                },
                Endpoint {
                    listener: ops_listener,
                    router: finish_router(ops, config, None),
                },
            ]
        }
    };
    crate::server::serve(endpoints, config, draining, shutdown).await?;
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested; finishing in-flight requests");
}

#[cfg(test)]
mod tests {

    #[test]
    fn only_a_trusted_proxy_may_name_the_client() {
        let proxy: std::net::IpAddr = "10.0.0.1".parse().unwrap();
        let peer: std::net::IpAddr = "127.0.0.9".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "6.6.6.6, 127.0.0.2".parse().unwrap());
        // Anyone else's header is ignored.
        assert_eq!(super::client_ip(peer, &headers, &[proxy]), peer);
        // Behind the proxy, the entry it appended counts, not what the client wrote before it.
        assert_eq!(
            super::client_ip(proxy, &headers, &[proxy]),
            "127.0.0.2".parse::<std::net::IpAddr>().unwrap()
        );
        // A chain of trusted proxies is walked through.
        headers.insert("x-forwarded-for", "127.0.0.3, 10.0.0.2".parse().unwrap());
        let second: std::net::IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(
            super::client_ip(proxy, &headers, &[proxy, second]),
            "127.0.0.3".parse::<std::net::IpAddr>().unwrap()
        );
        // A proxy that forwarded nothing is the client.
        assert_eq!(super::client_ip(proxy, &HeaderMap::new(), &[proxy]), proxy);
    }
    use super::*;

    fn parts(headers: &[(&str, &str)]) -> Parts {
        let mut request = axum::http::Request::builder().uri("/post/feed/posted");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(()).unwrap().into_parts().0
    }

    #[test]
    fn cookies_are_found_by_name_among_others() {
        let request = parts(&[("cookie", "a=1; agora_session=tok; b=2")]);
        assert_eq!(cookie(&request, SESSION_COOKIE), Some("tok"));
        assert_eq!(cookie(&request, "missing"), None);
        let mut with_utf8 = parts(&[]);
        with_utf8.headers.insert(
            header::COOKIE,
            HeaderValue::from_bytes("other=caf\u{e9}; agora_session=tok".as_bytes()).unwrap(),
        );
        assert_eq!(cookie(&with_utf8, SESSION_COOKIE), Some("tok"));
        assert_eq!(
            cookie(&parts(&[("cookie", "agora_session=")]), SESSION_COOKIE),
            None
        );
    }

    #[test]
    fn a_session_cookie_counts_only_from_a_page_of_this_host() {
        let cookie = ("cookie", "agora_session=tok");
        let host = ("host", "agora.example:8080");
        let same = parts(&[cookie, host, ("origin", "http://agora.example:8080")]);
        assert_eq!(session_token(&same), Some("tok"));
        let other = parts(&[cookie, host, ("origin", "http://evil.example")]);
        assert_eq!(session_token(&other), None);
        let no_origin = parts(&[cookie, host]);
        assert_eq!(session_token(&no_origin), None);
        let bearer = parts(&[cookie, host, ("authorization", "Bearer api")]);
        assert_eq!(session_token(&bearer), Some("api"));
        // Over HTTPS only the __Host- cookie counts: a plain one may have been planted.
        let https = ("origin", "https://agora.example:8080");
        assert_eq!(session_token(&parts(&[cookie, host, https])), None);
        let secure = ("cookie", "agora_session=planted; __Host-agora_session=real");
        assert_eq!(session_token(&parts(&[secure, host, https])), Some("real"));
        // A site marked secure by configuration, reached over plain HTTP (localhost).
        let plain = ("origin", "http://agora.example:8080");
        assert_eq!(session_token(&parts(&[secure, host, plain])), Some("real"));
    }

    #[test]
    fn origins_match_hosts_without_case_or_default_ports() {
        assert!(same_authority("http://Agora.Example", "agora.example:80"));
        assert!(same_authority("https://agora.example:443", "agora.example"));
        assert!(same_authority("http://[::1]:8080", "[::1]:8080"));
        assert!(!same_authority(
            "http://agora.example:8080",
            "agora.example"
        ));
        assert!(!same_authority(
            "https://agora.example.evil",
            "agora.example"
        ));
        assert!(!same_authority("null", "agora.example"));
    }
}
