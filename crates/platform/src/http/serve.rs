//! Binding, serving a service's routers on one or two listeners, and the shutdown signal.

use std::future::Future;

use axum::Router;
use tokio::net::TcpListener;

use super::{OpsEndpoints, PageFallback, finish_router};
use crate::config::{HttpConfig, OpsListen};
use crate::server::{Draining, Endpoint};

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
