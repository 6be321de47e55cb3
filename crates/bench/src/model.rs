//! What a benchmark run produces: the JSON result file, from which charts and the Markdown
//! report are rendered. Latencies are in microseconds throughout.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One whole run: several series (targets) measured at several load levels, in one process.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    /// Human title, e.g. "User search: before and after the name-prefix index".
    pub title: String,
    /// RFC 3339 UTC start time.
    pub started_at: String,
    pub machine: MachineInfo,
    pub params: RunParams,
    /// Free-form notes the scenario adds (dataset size, prefix mix, pool size...), rendered as a
    /// bullet list under "Setup".
    pub notes: Vec<String>,
    pub series: Vec<Series>,
    /// Markdown placed under the title: the study's question and reading of the results.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub preamble: String,
    /// Extra sections after the charts (query plans, DDL, raw facts a scenario gathered).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub appendix: Vec<Section>,
}

/// A titled Markdown section of the report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Section {
    pub title: String,
    pub markdown: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MachineInfo {
    pub cpus: usize,
    pub memory_gib: f64,
    pub os: String,
    pub cpu_model: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunParams {
    /// "closed" (N concurrent clients, each waits for its reply) or "open" (fixed arrival rate,
    /// latency measured from the intended send time).
    pub model: String,
    pub warmup_secs: f64,
    pub duration_secs: f64,
    /// Per-request timeout; a request that exceeds it counts as an error.
    pub timeout_ms: u64,
}

/// One target (e.g. "/health ceiling", "search without index") across load levels.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Series {
    pub name: String,
    /// What is requested, e.g. "GET /user/search?first_name=..&last_name=.." with the value mix.
    pub description: String,
    pub points: Vec<Point>,
}

/// One load level of one series.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Point {
    /// Concurrent clients (closed model) or connections (open model).
    pub concurrency: u32,
    /// Target arrival rate in requests/s (open model only).
    pub target_rate: Option<f64>,
    /// Measured seconds (warm-up excluded).
    pub duration_secs: f64,
    /// Completed requests with a 2xx status.
    pub ok: u64,
    /// Non-2xx answers, timeouts and connection errors.
    pub errors: u64,
    /// Counts by outcome: "200", "503", "timeout", "connect", ...
    pub outcomes: BTreeMap<String, u64>,
    /// Successful requests per second.
    pub throughput_rps: f64,
    pub latency: LatencySummary,
    /// Per-second timeline for the over-time charts.
    pub timeline: Vec<Second>,
    /// Latency distribution: (percentile 0..=100, latency µs), dense enough to plot.
    pub distribution: Vec<(f64, u64)>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct LatencySummary {
    pub mean_us: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Second {
    /// Seconds since the measured phase started.
    pub t: u32,
    pub ok: u64,
    pub errors: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    /// Requests in flight at the end of this second.
    pub in_flight: u64,
}
