//! Logging and metrics setup. Both are process-global, so they are installed once even when
//! tests start many servers in one process.

use std::io::IsTerminal;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, TelemetryConfig};

/// Installs the global `tracing` subscriber. A second call (tests) is a no-op.
pub fn init_tracing(config: &TelemetryConfig) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(&config.log_filter).map_err(|error| {
        anyhow::anyhow!(
            "AGORA_LOG={:?} is not a valid filter: {error}",
            config.log_filter
        )
    })?;
    // Colours only on a terminal: log files and collectors get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true)
        .with_ansi(std::io::stdout().is_terminal());
    let _ = match config.log_format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
    Ok(())
}

/// Latency buckets in seconds: fine below 10 ms where loopback requests live, coarse above.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The process's Prometheus recorder, installed on first use.
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
            .expect("static bucket list is non-empty")
            .build_recorder();
        let handle = recorder.handle();
        // Fails only if another recorder is installed, in which case metrics go there.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}
