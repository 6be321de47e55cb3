//! `/health`, `/ready` and `/metrics`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::server::Draining;
use crate::telemetry;

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
