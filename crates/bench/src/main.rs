//! `agora-bench`: measure an HTTP service at several concurrency levels and write a JSON result,
//! SVG charts and a Markdown report. See `docs/benchmarks/README.md`.

use std::net::ToSocketAddrs;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use agora_bench::engine::{Phase, Workload, run_closed};
use agora_bench::model::{MachineInfo, RunParams, RunReport, Series};
use anyhow::{Context, bail};
use clap::Parser;

#[derive(Parser)]
#[command(
    name = "agora-bench",
    version,
    about = "Closed-model HTTP load on raw hyper connections, with HDR latency, charts and a report"
)]
struct Cli {
    /// Base URL of the server under test (loopback only).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    target: String,
    /// A series as NAME=PATH, or NAME=@FILE with one path per line (cycled through). Repeat for
    /// several series; the first is the ceiling the others are compared with.
    #[arg(long = "series", required = true)]
    series: Vec<String>,
    /// Concurrent clients per load level.
    #[arg(long, value_delimiter = ',', default_value = "1,10,100,1000")]
    concurrency: Vec<u32>,
    #[arg(long, default_value_t = 2.0)]
    warmup_secs: f64,
    #[arg(long, default_value_t = 10.0)]
    duration_secs: f64,
    /// A request slower than this counts as an error.
    #[arg(long, default_value_t = 30_000)]
    timeout_ms: u64,
    /// Bearer token sent with every request.
    #[arg(long)]
    token: Option<String>,
    #[arg(long, default_value = "agora benchmark")]
    title: String,
    /// Notes for the report's Setup section (repeat).
    #[arg(long = "note")]
    notes: Vec<String>,
    /// Output directory and file stem: writes STEM.json, STEM.md and STEM-*.svg.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
    #[arg(long, default_value = "bench")]
    stem: String,
}

fn parse_series(spec: &str) -> anyhow::Result<(String, Vec<String>)> {
    let (name, source) = spec
        .split_once('=')
        .context("--series takes NAME=PATH or NAME=@FILE")?;
    let paths: Vec<String> = match source.strip_prefix('@') {
        Some(file) => std::fs::read_to_string(file)
            .with_context(|| format!("reading paths from {file}"))?
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .map(str::to_owned)
            .collect(),
        None => vec![source.to_owned()],
    };
    if paths.is_empty() {
        bail!("series {name} has no paths");
    }
    for path in &paths {
        if !path.starts_with('/') || path.parse::<hyper::Uri>().is_err() {
            bail!("series {name}: {path:?} is not a path like /user/search?first_name=..");
        }
    }
    Ok((name.to_owned(), paths))
}

fn machine() -> MachineInfo {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let memory_kib: f64 = read("/proc/meminfo")
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    MachineInfo {
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        memory_gib: (memory_kib / 1024.0 / 1024.0 * 10.0).round() / 10.0,
        os: read("/etc/os-release")
            .lines()
            .find_map(|line| line.strip_prefix("PRETTY_NAME="))
            .map(|name| name.trim_matches('"').to_owned())
            .unwrap_or_else(|| std::env::consts::OS.to_owned()),
        cpu_model: read("/proc/cpuinfo")
            .lines()
            .find_map(|line| line.strip_prefix("model name"))
            .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
            .unwrap_or_default(),
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let uri: hyper::Uri = cli
        .target
        .parse()
        .context("--target must be a URL like http://127.0.0.1:8080")?;
    let host = uri.host().context("--target needs a host")?.to_owned();
    let port = uri.port_u16().unwrap_or(80);
    let address = (host.as_str(), port)
        .to_socket_addrs()?
        .next()
        .context("--target host does not resolve")?;
    if !address.ip().is_loopback() {
        bail!("agora-bench only loads servers on this machine (loopback); {address} is not");
    }
    let series_specs = cli
        .series
        .iter()
        .map(|spec| parse_series(spec))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let started_at = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let mut report = RunReport {
        title: cli.title.clone(),
        started_at,
        machine: machine(),
        params: RunParams {
            model: "closed".into(),
            warmup_secs: cli.warmup_secs,
            duration_secs: cli.duration_secs,
            timeout_ms: cli.timeout_ms,
        },
        notes: cli.notes.clone(),
        series: Vec::new(),
    };
    runtime.block_on(async {
        for (name, paths) in series_specs {
            let description = if paths.len() == 1 {
                format!("GET {}", paths[0])
            } else {
                format!(
                    "GET, {} distinct paths cycled, e.g. {}",
                    paths.len(),
                    paths[0]
                )
            };
            let workload = Workload {
                target: address,
                host_header: format!("{host}:{port}"),
                paths: Arc::new(paths),
                bearer: cli.token.clone(),
            };
            let mut series = Series {
                name: name.clone(),
                description,
                points: Vec::new(),
            };
            for &concurrency in &cli.concurrency {
                let phase = Phase {
                    concurrency,
                    warmup: Duration::from_secs_f64(cli.warmup_secs),
                    duration: Duration::from_secs_f64(cli.duration_secs),
                    timeout: Duration::from_millis(cli.timeout_ms),
                };
                let point = run_closed(&workload, phase, &name).await;
                eprintln!(
                    "{name}: c={concurrency} rps={:.0} p50={:.2}ms p99={:.2}ms errors={}",
                    point.throughput_rps,
                    point.latency.p50_us as f64 / 1000.0,
                    point.latency.p99_us as f64 / 1000.0,
                    point.errors
                );
                series.points.push(point);
            }
            report.series.push(series);
        }
    });
    std::fs::create_dir_all(&cli.out)?;
    let written = agora_bench::report::write_all(&report, &cli.out, &cli.stem)?;
    for path in written {
        println!("wrote {}", path.display());
    }
    Ok(())
}
