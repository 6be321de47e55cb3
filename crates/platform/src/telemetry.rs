//! Logging and metrics setup. Both are process-global, so they are installed once even when
//! tests start many servers in one process.

use std::io::IsTerminal;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, Ordering};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

use crate::config::{AccessLog, LogFormat, TelemetryConfig};

/// Which requests get an access line (`AccessLog`, as a number for a lock-free read).
static ACCESS_LOG: AtomicU8 = AtomicU8::new(0);

/// Whether a request that ended with `status` after `elapsed` gets an access line.
pub fn wants_access_line(status: u16, elapsed: std::time::Duration) -> bool {
    match ACCESS_LOG.load(Ordering::Relaxed) {
        0 => true,
        1 => status >= 400 || elapsed >= std::time::Duration::from_secs(1),
        _ => false,
    }
}

/// Installs the global `tracing` subscriber. A second call (tests) is a no-op.
///
/// Lines go to stdout through a bounded queue and a writer thread (`tracing-appender`'s
/// non-blocking writer, lossy): a request never waits for whoever reads stdout, and lines
/// that do not fit while the reader stalls are dropped and counted in
/// `log_lines_dropped_total`.
pub fn init_tracing(config: &TelemetryConfig) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(&config.log_filter).map_err(|error| {
        anyhow::anyhow!(
            "AGORA_LOG={:?} is not a valid filter: {error}",
            config.log_filter
        )
    })?;
    ACCESS_LOG.store(
        match config.access_log {
            AccessLog::All => 0,
            AccessLog::Errors => 1,
            AccessLog::Off => 2,
        },
        Ordering::Relaxed,
    );
    static WRITER: OnceLock<(NonBlocking, WorkerGuard)> = OnceLock::new();
    let (writer, _) = WRITER.get_or_init(|| {
        let (writer, guard) = NonBlockingBuilder::default()
            .lossy(true)
            .buffered_lines_limit(usize::try_from(config.log_buffer_lines).unwrap_or(usize::MAX))
            .thread_name("agora-log-writer")
            .finish(std::io::stdout());
        count_dropped_lines(writer.error_counter());
        (writer, guard)
    });
    // Colours only on a terminal: log files and collectors get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true)
        .with_writer(writer.clone())
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

/// Publishes the writer's count of dropped lines as a metric, once a second.
fn count_dropped_lines(counter: tracing_appender::non_blocking::ErrorCounter) {
    let spawned = std::thread::Builder::new()
        .name("agora-log-drops".into())
        .spawn(move || {
            // The recorder first, or the counter would be bound to none.
            prometheus();
            let dropped = metrics::counter!("log_lines_dropped_total");
            loop {
                dropped.absolute(counter.dropped_lines() as u64);
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
        });
    if let Err(error) = spawned {
        eprintln!("could not start the thread that counts dropped log lines: {error}");
    }
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
