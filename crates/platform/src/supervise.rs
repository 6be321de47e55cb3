//! Long-running background parts (a worker's relay and lanes, a server's queue consumers) that
//! must outlive every outage of what they talk to.

use std::future::Future;
use std::time::Duration;

use crate::amqp::Backoff;
use tokio::sync::watch;

/// Reruns `part` after any failure, with backoff, until shutdown.
pub async fn supervise<F, Fut>(name: &'static str, stop: watch::Receiver<bool>, part: F)
where
    F: Fn(watch::Receiver<bool>) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let mut backoff = Backoff::default();
    while !*stop.borrow() {
        let started = std::time::Instant::now();
        match part(stop.clone()).await {
            Ok(()) => return,
            Err(error) => {
                tracing::warn!(part = name, error = format!("{error:#}"), "restarting");
                metrics::counter!("background_restarts_total", "part" => name).increment(1);
            }
        }
        if started.elapsed() > Duration::from_secs(30) {
            backoff.reset();
        }
        backoff.wait().await;
    }
}
