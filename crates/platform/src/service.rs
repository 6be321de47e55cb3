//! A service as the `agora` binary assembles it: routes, readiness checks, background tasks and
//! shutdown steps, served by one server loop with one set of operations endpoints whichever
//! services a process runs (`agora serve --services social,dialogs`).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::HttpConfig;
use crate::http::{OpsEndpoints, PageFallback, health_router, serve_service};

pub type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Told `true` when the process begins to shut down.
pub type StopSignal = watch::Receiver<bool>;

type BackgroundTask = Box<dyn FnOnce(StopSignal) -> BoxFuture + Send>;

/// What one service brings to a server process.
pub struct Service {
    pub name: &'static str,
    /// Its routes, with their state.
    api: Router,
    ops: OpsEndpoints,
    background: Vec<BackgroundTask>,
    on_shutdown: Vec<Box<dyn FnOnce() + Send>>,
    after_serve: Vec<Box<dyn FnOnce(Duration) -> BoxFuture + Send>>,
    pages: Option<PageFallback>,
}

impl Service {
    pub fn new(name: &'static str, api: Router, ops: OpsEndpoints) -> Self {
        Self {
            name,
            api,
            ops,
            background: Vec::new(),
            on_shutdown: Vec::new(),
            after_serve: Vec::new(),
            pages: None,
        }
    }

    /// Error pages for browsers: unknown paths and methods get `pages` instead of JSON when the
    /// client asks for HTML. One service of a process (the web front end) sets it.
    pub fn error_pages(mut self, pages: PageFallback) -> Self {
        self.pages = Some(pages);
        self
    }

    /// A task that runs for the life of the process and returns once `stop` turns true.
    pub fn background<F, Fut>(mut self, task: F) -> Self
    where
        F: FnOnce(StopSignal) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.background
            .push(Box::new(move |stop| Box::pin(task(stop))));
        self
    }

    /// Runs as soon as shutdown begins, before in-flight requests drain: connections the server
    /// loop does not track (upgraded WebSockets) are closed here.
    pub fn on_shutdown(mut self, hook: impl FnOnce() + Send + 'static) -> Self {
        self.on_shutdown.push(Box::new(hook));
        self
    }

    /// Awaited after the server stopped serving, with the grace period left as its budget.
    pub fn after_serve<F, Fut>(mut self, step: F) -> Self
    where
        F: FnOnce(Duration) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.after_serve
            .push(Box::new(move |grace| Box::pin(step(grace))));
        self
    }
}

/// Serves `services` on `listener` (and the operations listener the config names) until
/// `shutdown` resolves: one router, one `/ready` with every service's checks, one `/metrics`.
pub async fn run(
    services: Vec<Service>,
    listener: TcpListener,
    config: &HttpConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    anyhow::ensure!(!services.is_empty(), "no service to serve");
    let (stop_tx, stop) = watch::channel(false);
    let mut api = health_router();
    let mut ops = OpsEndpoints::default();
    let mut on_shutdown = Vec::new();
    let mut after_serve = Vec::new();
    let mut pages = None;
    for service in services {
        pages = pages.or(service.pages);
        tracing::info!(service = service.name, "serving");
        api = api.merge(service.api);
        ops = ops.merge(service.ops);
        for task in service.background {
            tokio::spawn(task(stop.clone()));
        }
        on_shutdown.extend(service.on_shutdown);
        after_serve.extend(service.after_serve);
    }
    let shutdown = async move {
        shutdown.await;
        for hook in on_shutdown {
            hook();
        }
        let _ = stop_tx.send(true);
    };
    serve_service(listener, api, ops, config, pages, shutdown).await?;
    let grace = Duration::from_secs(config.shutdown_grace_secs);
    for step in after_serve {
        step(grace).await;
    }
    Ok(())
}
