//! `agora-bench`: measure an HTTP service at several load levels and write a JSON result, SVG
//! charts and a Markdown report (`run`), or re-render and merge earlier results (`render`).
//! See `docs/benchmarks/README.md`.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use agora_bench::engine::{Pacing, Phase, RequestLine, Workload, run};
use agora_bench::model::{MachineInfo, RunParams, RunReport, Section, Series};
use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "agora-bench",
    version,
    about = "HTTP load on raw hyper connections (closed and open models), with HDR latency, charts and a report"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Measure one or more series and write STEM.json, STEM-*.svg and STEM.md.
    Run(RunArgs),
    /// Merge earlier STEM.json results (series in the order given) and render them again.
    Render(RenderArgs),
    /// Social network: time from POST /post/create until followers' feeds show the post, for
    /// ordinary authors at a steady rate and one celebrity post. Writes a JSON result.
    Propagation(agora_bench::social::PropagationArgs),
    /// Render propagation results as a Markdown section and a chart.
    PropagationReport(PropagationReportArgs),
    /// Social network: post-to-WebSocket delay with many sockets open, and server memory per
    /// socket. Writes a JSON result and a Markdown section next to it.
    Live(agora_bench::social::LiveArgs),
    /// Shop: shoppers that browse, fill and empty their carts, order and cancel, over several
    /// entry points; times each kind of request. Writes a JSON result.
    Shopaholic(agora_bench::shop::ShopaholicArgs),
    /// Render shopaholic results (one per configuration) as tables and bar charts.
    ShopReport(ShopReportArgs),
    /// UGC storage study: the same ratings, reviews and bookmarks in PostgreSQL, ClickHouse,
    /// Redis and Tarantool; loads, writes, and the API's reads alone and under writes. Writes
    /// STEM.json, STEM.md and charts.
    UgcStorage(agora_bench::ugc_storage::StudyArgs),
}

#[derive(Args)]
struct ShopReportArgs {
    /// A result of `shopaholic`; repeat, one per configuration, in the order to show.
    #[arg(long = "from", required = true)]
    from: Vec<PathBuf>,
    /// Directory for STEM-mean.svg and STEM-p99.svg.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value = "shop")]
    stem: String,
    /// Markdown section to write (tables, and the charts embedded as PNG).
    #[arg(long)]
    markdown: PathBuf,
}

#[derive(Args)]
struct PropagationReportArgs {
    /// A result of `propagation`; repeat to compare runs.
    #[arg(long = "from", required = true)]
    from: Vec<PathBuf>,
    /// Markdown section to write; the chart goes next to it as .svg (and is embedded as .png).
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
struct RunArgs {
    /// Base URL of the server under test (loopback only).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    target: String,
    /// A series as NAME=PATH, or NAME=@FILE with one path per line (cycled through). Repeat for
    /// several series.
    #[arg(long = "series", required = true)]
    series: Vec<String>,
    /// The tool's own ceiling, measured first in every run and compared with every series: a
    /// path the server answers without work. Empty to skip.
    #[arg(long, default_value = "/health")]
    ceiling: String,
    /// Closed model: concurrent clients per load level.
    #[arg(long, value_delimiter = ',', default_value = "1,10,100,1000")]
    concurrency: Vec<u32>,
    /// Open model: target arrival rates (requests/s) per load level; switches the model to open.
    #[arg(long, value_delimiter = ',')]
    rate: Vec<f64>,
    /// Open model: connections that carry the scheduled requests.
    #[arg(long, default_value_t = 64)]
    connections: u32,
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
    /// Send every token as this cookie instead of a bearer header (pages for browsers, e.g.
    /// `agora_session`).
    #[arg(long)]
    token_cookie: Option<String>,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Args)]
struct RenderArgs {
    /// A result file written by `run`; repeat to merge several runs into one report.
    #[arg(long = "from", required = true)]
    from: Vec<PathBuf>,
    /// Markdown file whose text goes under the report's title.
    #[arg(long)]
    preamble: Option<PathBuf>,
    /// TITLE=@FILE: a Markdown section added after the charts (repeat).
    #[arg(long = "appendix")]
    appendix: Vec<String>,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Args)]
struct OutputArgs {
    #[arg(long, default_value = "agora benchmark")]
    title: String,
    /// Notes for the report's Setup section (repeat).
    #[arg(long = "note")]
    notes: Vec<String>,
    /// Output directory; files are STEM.json, STEM.md and STEM-*.svg.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
    #[arg(long, default_value = "bench")]
    stem: String,
}

/// `NAME=PATH` or `NAME=@FILE`. A file has one request per line: a path, optionally followed
/// by a space and the bearer token to send it with (requests made as many different users);
/// or `POST PATH TOKEN JSON` / `PUT PATH TOKEN JSON`, a JSON body to send as that user.
fn parse_line(line: &str) -> anyhow::Result<RequestLine> {
    for method in [hyper::Method::POST, hyper::Method::PUT] {
        let Some(rest) = line.strip_prefix(&format!("{method} ")) else {
            continue;
        };
        let mut parts = rest.splitn(3, ' ');
        let (Some(path), Some(token), Some(body)) = (parts.next(), parts.next(), parts.next())
        else {
            bail!("{line:?}: a {method} line is {method} PATH TOKEN JSON");
        };
        serde_json::from_str::<serde_json::Value>(body)
            .with_context(|| format!("{line:?}: the body is not JSON"))?;
        return Ok(RequestLine {
            method,
            path: path.to_owned(),
            bearer: Some(token.to_owned()),
            body: Some(body.to_owned().into()),
        });
    }
    Ok(match line.split_once(' ') {
        Some((path, token)) => RequestLine {
            bearer: Some(token.trim().to_owned()),
            ..RequestLine::path(path)
        },
        None => RequestLine::path(line),
    })
}

fn parse_series(spec: &str) -> anyhow::Result<(String, Vec<RequestLine>)> {
    let (name, source) = spec
        .split_once('=')
        .context("--series takes NAME=PATH or NAME=@FILE")?;
    let lines: Vec<RequestLine> = match source.strip_prefix('@') {
        Some(file) => std::fs::read_to_string(file)
            .with_context(|| format!("reading paths from {file}"))?
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .map(parse_line)
            .collect::<anyhow::Result<_>>()?,
        None => vec![RequestLine::path(source)],
    };
    if lines.is_empty() {
        bail!("series {name} has no paths");
    }
    for line in &lines {
        let path = &line.path;
        if !path.starts_with('/') || path.parse::<hyper::Uri>().is_err() {
            bail!("series {name}: {path:?} is not a path like /user/search?first_name=..");
        }
    }
    Ok((name.to_owned(), lines))
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

fn resolve_loopback(target: &str) -> anyhow::Result<(SocketAddr, String)> {
    let uri: hyper::Uri = target
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
    Ok((address, format!("{host}:{port}")))
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn describe(lines: &[RequestLine]) -> String {
    let users = lines
        .iter()
        .filter_map(|line| line.bearer.as_deref())
        .collect::<std::collections::HashSet<_>>()
        .len();
    let as_users = if users > 1 {
        format!(", as {users} users")
    } else {
        String::new()
    };
    let paths: Vec<&str> = lines.iter().map(|line| line.path.as_str()).collect();
    let method = lines[0].method.as_str();
    if lines.len() == 1 {
        format!("{method} {}{as_users}", paths[0])
    } else {
        format!(
            "{method}, {} requests cycled{as_users}, e.g. {}",
            paths.len(),
            paths[0]
        )
    }
}

fn run_command(args: RunArgs) -> anyhow::Result<RunReport> {
    let (address, host_header) = resolve_loopback(&args.target)?;
    let mut series_specs = Vec::new();
    if !args.ceiling.is_empty() {
        series_specs.push(parse_series(&format!("ceiling {0}={0}", args.ceiling))?);
    }
    for spec in &args.series {
        series_specs.push(parse_series(spec)?);
    }
    let open = !args.rate.is_empty();
    if open
        && args
            .rate
            .iter()
            .any(|rate| !rate.is_finite() || *rate <= 0.0)
    {
        bail!("--rate values must be positive requests/s");
    }
    let levels: Vec<(Pacing, u32)> = if open {
        args.rate
            .iter()
            .map(|&rate| (Pacing::Open { rate }, args.connections))
            .collect()
    } else {
        args.concurrency
            .iter()
            .map(|&clients| (Pacing::Closed, clients))
            .collect()
    };
    let mut report = RunReport {
        title: args.output.title.clone(),
        started_at: now_rfc3339(),
        machine: machine(),
        params: RunParams {
            model: if open { "open" } else { "closed" }.into(),
            warmup_secs: args.warmup_secs,
            duration_secs: args.duration_secs,
            timeout_ms: args.timeout_ms,
        },
        notes: args.output.notes.clone(),
        series: Vec::new(),
        preamble: String::new(),
        appendix: Vec::new(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        for (name, paths) in series_specs {
            let description = describe(&paths);
            let workload = Workload {
                target: address,
                host_header: host_header.clone(),
                requests: Arc::new(paths),
                bearer: args.token.clone(),
                token_cookie: args.token_cookie.clone(),
            };
            let mut series = Series {
                name: name.clone(),
                description,
                points: Vec::new(),
            };
            for &(pacing, concurrency) in &levels {
                let phase = Phase {
                    pacing,
                    concurrency,
                    warmup: Duration::from_secs_f64(args.warmup_secs),
                    duration: Duration::from_secs_f64(args.duration_secs),
                    timeout: Duration::from_millis(args.timeout_ms),
                };
                let point = run(&workload, phase, &name).await;
                eprintln!(
                    "{name}: {} rps={:.0} p50={:.2}ms p99={:.2}ms errors={}",
                    match pacing {
                        Pacing::Closed => format!("c={concurrency}"),
                        Pacing::Open { rate } => format!("rate={rate}"),
                    },
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
    Ok(report)
}

fn render_command(args: RenderArgs) -> anyhow::Result<RunReport> {
    let mut merged: Option<RunReport> = None;
    for path in &args.from {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let report: RunReport = serde_json::from_str(&text)
            .with_context(|| format!("{} is not an agora-bench result", path.display()))?;
        match merged.as_mut() {
            None => merged = Some(report),
            Some(into) => {
                if into.params.model != report.params.model {
                    bail!(
                        "cannot merge a {} run into a {} run",
                        report.params.model,
                        into.params.model
                    );
                }
                for note in report.notes {
                    if !into.notes.contains(&note) {
                        into.notes.push(note);
                    }
                }
                into.series.extend(report.series);
                into.appendix.extend(report.appendix);
            }
        }
    }
    let mut report = merged.context("--from names no result")?;
    report.title = args.output.title.clone();
    report.notes.extend(args.output.notes.iter().cloned());
    if let Some(path) = &args.preamble {
        report.preamble =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    }
    for spec in &args.appendix {
        let (title, file) = spec
            .split_once("=@")
            .context("--appendix takes TITLE=@FILE")?;
        report.appendix.push(Section {
            title: title.to_owned(),
            markdown: std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?,
        });
    }
    Ok(report)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn write_json(path: &std::path::Path, value: &impl serde::Serialize) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, serde_json::to_string_pretty(value)?)
        .with_context(|| format!("writing {}", path.display()))
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let (report, output) = match cli.command {
        Command::Run(args) => {
            let output_dir = args.output.out.clone();
            let stem = args.output.stem.clone();
            (run_command(args)?, (output_dir, stem))
        }
        Command::Render(args) => {
            let output_dir = args.output.out.clone();
            let stem = args.output.stem.clone();
            (render_command(args)?, (output_dir, stem))
        }
        Command::Propagation(args) => {
            let out = args.out.clone();
            let report = runtime()?.block_on(agora_bench::social::propagation(args))?;
            let o = &report.ordinary;
            println!(
                "propagation {}: {} ordinary posts, p50 {:.1} ms, p99 {:.1} ms, {} lost; celebrity last follower {:?} ms",
                report.label,
                o.count,
                o.p50_ms,
                o.p99_ms,
                report.lost,
                report.celebrity.as_ref().and_then(|c| c.last_follower_ms)
            );
            write_json(&out, &report)?;
            return Ok(());
        }
        Command::PropagationReport(args) => {
            let mut reports = Vec::new();
            for path in &args.from {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                reports.push(
                    serde_json::from_str(&text)
                        .with_context(|| format!("parsing {}", path.display()))?,
                );
            }
            let svg = args.out.with_extension("svg");
            agora_bench::social::propagation_chart(&reports, &svg)?;
            let png = svg.with_extension("png");
            let png_name = png
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("chart.png");
            std::fs::write(
                &args.out,
                agora_bench::social::propagation_markdown(&reports, png_name),
            )?;
            println!("wrote {} and {}", args.out.display(), svg.display());
            return Ok(());
        }
        Command::Shopaholic(args) => {
            let report = runtime()?.block_on(agora_bench::shop::shopaholic(args))?;
            let total: u64 = report.kinds.values().map(|kind| kind.count).sum();
            let errors: u64 = report.kinds.values().map(|kind| kind.errors).sum();
            println!(
                "shopaholic {}: {} clients, {total} requests in {:.1} s, {errors} errors {:?}, {} failovers",
                report.label,
                report.clients,
                report.duration_secs,
                report.error_statuses,
                report.failovers
            );
            return Ok(());
        }
        Command::UgcStorage(args) => {
            use agora_bench::ugc_storage;
            let read = |path: &Option<PathBuf>| -> anyhow::Result<String> {
                path.as_ref().map_or(Ok(String::new()), |path| {
                    std::fs::read_to_string(path)
                        .with_context(|| format!("reading {}", path.display()))
                })
            };
            let (preamble, conclusion) = (read(&args.preamble)?, read(&args.conclusion)?);
            let (out, stem) = (args.out.clone(), args.stem.clone());
            std::fs::create_dir_all(&out)?;
            let result = runtime()?.block_on(ugc_storage::study(args))?;
            std::fs::write(
                out.join(format!("{stem}.json")),
                serde_json::to_string_pretty(&result)?,
            )?;
            ugc_storage::report::charts(&result, &out, &stem)?;
            std::fs::write(
                out.join(format!("{stem}.md")),
                ugc_storage::report::markdown(&result, &stem, &preamble, &conclusion),
            )?;
            println!(
                "ugc-storage: wrote {}",
                out.join(format!("{stem}.md")).display()
            );
            return Ok(());
        }
        Command::ShopReport(args) => {
            let reports = args
                .from
                .iter()
                .map(|path| {
                    serde_json::from_str::<agora_bench::shop::ShopaholicReport>(
                        &std::fs::read_to_string(path)
                            .with_context(|| format!("reading {}", path.display()))?,
                    )
                    .with_context(|| format!("parsing {}", path.display()))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            std::fs::create_dir_all(&args.out)?;
            let mut charts = Vec::new();
            for (suffix, title, value) in [
                (
                    "mean",
                    "Mean time of each request, per configuration (ms)",
                    (|k: &agora_bench::shop::KindSummary| k.mean_ms) as fn(&_) -> f64,
                ),
                (
                    "p99",
                    "p99 of each request, per configuration (ms)",
                    |k: &agora_bench::shop::KindSummary| k.p99_ms,
                ),
            ] {
                let svg = args.out.join(format!("{}-{suffix}.svg", args.stem));
                agora_bench::shop::shop_chart(&reports, title, value, &svg)?;
                charts.push((title, format!("{}-{suffix}.png", args.stem)));
            }
            std::fs::write(
                &args.markdown,
                agora_bench::shop::shop_markdown(&reports, &charts),
            )?;
            println!("wrote {}", args.markdown.display());
            return Ok(());
        }
        Command::Live(args) => {
            let out = args.out.clone();
            let report = runtime()?.block_on(agora_bench::social::live(args))?;
            println!(
                "live: {} sockets, {}/{} deliveries, p50 {:.1} ms, p99 {:.1} ms, {:?} KiB per socket",
                report.sockets,
                report.deliveries,
                report.expected_deliveries,
                report.post_to_socket.p50_ms,
                report.post_to_socket.p99_ms,
                report.server_kib_per_socket
            );
            write_json(&out, &report)?;
            std::fs::write(
                out.with_extension("md"),
                agora_bench::social::live_markdown(&report),
            )?;
            return Ok(());
        }
    };
    let (dir, stem) = output;
    std::fs::create_dir_all(&dir)?;
    for path in agora_bench::report::write_all(&report, &dir, &stem)? {
        println!("wrote {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_are_gets_with_tokens_or_json_posts() {
        let get = parse_line("/post/feed?limit=10 token-a").unwrap();
        assert_eq!(get.path, "/post/feed?limit=10");
        assert_eq!(get.bearer.as_deref(), Some("token-a"));
        assert!(get.body.is_none());
        let post = parse_line(r#"POST /dialog/42/send token-b {"text":"hi there"}"#).unwrap();
        assert_eq!(post.path, "/dialog/42/send");
        assert_eq!(post.bearer.as_deref(), Some("token-b"));
        assert_eq!(post.body.as_deref(), Some(&br#"{"text":"hi there"}"#[..]));
        assert!(parse_line("POST /dialog/42/send token-b not-json").is_err());
        assert!(parse_line("POST /dialog/42/send").is_err());
    }
}
