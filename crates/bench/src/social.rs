//! Measurements that follow one post through the social network rather than load one URL:
//!
//! - [`propagation`]: how long until a post is in a follower's feed (`GET /post/feed` shows
//!   it), for ordinary authors posting at a steady rate while a celebrity posts once.
//! - [`live`]: how long until a post reaches the open WebSockets of its author's followers,
//!   with thousands of sockets open, and what each socket costs the server in memory.
//!
//! Both time from the moment the `POST /post/create` is sent, so the write itself counts.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use plotters::prelude::*;
use serde::{Deserialize, Serialize};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("static bounds")
}

fn summarize(histogram: &Histogram<u64>) -> Summary {
    let ms = |us: u64| us as f64 / 1000.0;
    Summary {
        count: histogram.len(),
        p50_ms: ms(histogram.value_at_quantile(0.5)),
        p90_ms: ms(histogram.value_at_quantile(0.9)),
        p99_ms: ms(histogram.value_at_quantile(0.99)),
        max_ms: ms(histogram.max()),
    }
}

fn micros(duration: Duration) -> u64 {
    (duration.as_micros() as u64).max(1)
}

fn read_lines(path: &PathBuf) -> anyhow::Result<Vec<Vec<String>>> {
    Ok(std::fs::read_to_string(path)
        .with_context(|| format!("reading {}", path.display()))?
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(|line| line.split_whitespace().map(str::to_owned).collect())
        .collect())
}

async fn create_post(
    client: &reqwest::Client,
    target: &str,
    token: &str,
    text: &str,
) -> anyhow::Result<String> {
    let response = client
        .post(format!("{target}/post/create"))
        .bearer_auth(token)
        .json(&serde_json::json!({ "text": text }))
        .send()
        .await?;
    if !response.status().is_success() {
        bail!("POST /post/create answered {}", response.status());
    }
    Ok(response.json::<String>().await?)
}

/// Whether the newest `limit` posts of the token holder's feed include `post_id`.
async fn feed_has(
    client: &reqwest::Client,
    target: &str,
    token: &str,
    post_id: &str,
) -> anyhow::Result<bool> {
    let posts: Vec<serde_json::Value> = client
        .get(format!("{target}/post/feed?offset=0&limit=50"))
        .bearer_auth(token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(posts.iter().any(|post| post["id"] == post_id))
}

/// Polls the feed until the post is in it: every 5 ms for the first 100 ms, then every 25 ms,
/// so fast deliveries are timed finely and slow ones do not flood the server with polls.
async fn wait_in_feed(
    client: &reqwest::Client,
    target: &str,
    token: &str,
    post_id: &str,
    started: Instant,
    timeout: Duration,
) -> Option<Duration> {
    loop {
        if let Ok(true) = feed_has(client, target, token, post_id).await {
            return Some(started.elapsed());
        }
        if started.elapsed() > timeout {
            return None;
        }
        let pause = if started.elapsed() < Duration::from_millis(100) {
            5
        } else {
            25
        };
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}

#[derive(Debug, clap::Args)]
pub struct PropagationArgs {
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub target: String,
    /// `AUTHOR_TOKEN FOLLOWER_TOKEN` per line (`agora scenario feed` writes it).
    #[arg(long)]
    pub pairs: PathBuf,
    /// `ID TOKEN FOLLOWERS FIRST_TOKEN LAST_TOKEN`: the celebrity who posts once.
    #[arg(long)]
    pub celebrity: Option<PathBuf>,
    /// Ordinary posts per second.
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,
    #[arg(long, default_value_t = 30.0)]
    pub duration_secs: f64,
    /// When the celebrity posts, in seconds from the start.
    #[arg(long, default_value_t = 5.0)]
    pub celebrity_at_secs: f64,
    /// A post not in the feed after this long counts as lost.
    #[arg(long, default_value_t = 60)]
    pub timeout_secs: u64,
    /// Label of this run in the report.
    #[arg(long, default_value = "propagation")]
    pub label: String,
    /// Output: STEM.json and STEM.svg (latency of each ordinary post against time).
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct CelebrityOutcome {
    pub followers: u64,
    /// Until the follower the fan-out reaches first / last had the post in their feed.
    pub first_follower_ms: Option<f64>,
    pub last_follower_ms: Option<f64>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct PropagationReport {
    pub label: String,
    pub rate: f64,
    pub duration_secs: f64,
    pub ordinary: Summary,
    /// Ordinary posts sent between the celebrity's post and its arrival at the last follower.
    pub ordinary_during_celebrity: Option<Summary>,
    pub lost: u64,
    pub celebrity: Option<CelebrityOutcome>,
    pub celebrity_at_secs: f64,
    /// (seconds since start, post-to-feed ms) of every ordinary post, for the chart.
    pub samples: Vec<(f64, f64)>,
}

pub async fn propagation(args: PropagationArgs) -> anyhow::Result<PropagationReport> {
    let pairs: Vec<(String, String)> = read_lines(&args.pairs)?
        .into_iter()
        .filter_map(|line| Some((line.first()?.clone(), line.get(1)?.clone())))
        .collect();
    if pairs.is_empty() {
        bail!(
            "{} has no AUTHOR_TOKEN FOLLOWER_TOKEN lines",
            args.pairs.display()
        );
    }
    let celebrity = match &args.celebrity {
        Some(path) => read_lines(path)?.into_iter().next(),
        None => None,
    };
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    let target = Arc::new(args.target.trim_end_matches('/').to_owned());
    let timeout = Duration::from_secs(args.timeout_secs);

    // Every watcher reads their feed once first: an active, cached feed is what a push
    // updates, and the first read would otherwise time a rebuild.
    let mut watchers: Vec<&str> = pairs.iter().map(|pair| pair.1.as_str()).collect();
    if let Some(line) = &celebrity {
        watchers.extend(line.iter().skip(3).map(String::as_str));
    }
    for chunk in watchers.chunks(32) {
        let reads = chunk
            .iter()
            .map(|token| feed_has(&client, &target, token, ""));
        for read in futures_util::future::join_all(reads).await {
            read.context("warming a watcher's feed")?;
        }
    }

    let started = Instant::now();
    let samples = Arc::new(Mutex::new(Vec::new()));
    let lost = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let celebrity_task = celebrity.map(|line| {
        let (client, target) = (client.clone(), target.clone());
        let at = Duration::from_secs_f64(args.celebrity_at_secs);
        tokio::spawn(async move {
            tokio::time::sleep_until((started + at).into()).await;
            let posted = Instant::now();
            let id = create_post(&client, &target, &line[1], "a celebrity speaks").await?;
            let first = wait_in_feed(&client, &target, &line[3], &id, posted, timeout);
            let last = wait_in_feed(&client, &target, &line[4], &id, posted, timeout);
            let (first, last) = tokio::join!(first, last);
            anyhow::Ok((
                posted.duration_since(started),
                CelebrityOutcome {
                    followers: line[2].parse().unwrap_or(0),
                    first_follower_ms: first.map(|d| d.as_secs_f64() * 1000.0),
                    last_follower_ms: last.map(|d| d.as_secs_f64() * 1000.0),
                },
            ))
        })
    });

    let interval = Duration::from_secs_f64(1.0 / args.rate);
    let total = (args.duration_secs * args.rate).round() as usize;
    let mut posts = tokio::task::JoinSet::new();
    for k in 0..total {
        tokio::time::sleep_until((started + interval.mul_f64(k as f64)).into()).await;
        let (client, target) = (client.clone(), target.clone());
        let (author, follower) = pairs[k % pairs.len()].clone();
        let (samples, lost) = (samples.clone(), lost.clone());
        posts.spawn(async move {
            let sent = Instant::now();
            let Ok(id) = create_post(&client, &target, &author, "an ordinary post").await else {
                lost.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return;
            };
            match wait_in_feed(&client, &target, &follower, &id, sent, timeout).await {
                Some(delay) => samples.lock().expect("not poisoned").push((
                    sent.duration_since(started).as_secs_f64(),
                    delay.as_secs_f64() * 1000.0,
                )),
                None => {
                    lost.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        });
    }
    while posts.join_next().await.is_some() {}
    let celebrity = match celebrity_task {
        Some(task) => Some(task.await??),
        None => None,
    };

    let mut samples = std::mem::take(&mut *samples.lock().expect("not poisoned"));
    samples.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut all = histogram();
    let mut during = histogram();
    let window = celebrity.as_ref().map(|(at, outcome)| {
        let at = at.as_secs_f64();
        let done = outcome
            .last_follower_ms
            .map_or(f64::INFINITY, |ms| at + ms / 1000.0);
        (at, done)
    });
    for &(at, ms) in &samples {
        let us = (ms * 1000.0).max(1.0) as u64;
        all.saturating_record(us);
        if window.is_some_and(|(from, to)| at >= from && at <= to) {
            during.saturating_record(us);
        }
    }
    Ok(PropagationReport {
        label: args.label,
        rate: args.rate,
        duration_secs: args.duration_secs,
        ordinary: summarize(&all),
        ordinary_during_celebrity: (!during.is_empty()).then(|| summarize(&during)),
        lost: lost.load(std::sync::atomic::Ordering::Relaxed),
        celebrity_at_secs: celebrity
            .as_ref()
            .map_or(args.celebrity_at_secs, |(at, _)| at.as_secs_f64()),
        celebrity: celebrity.map(|(_, outcome)| outcome),
        samples,
    })
}

/// Latency of every ordinary post against the time it was sent, with the celebrity's fan-out
/// window shaded: the picture of whether a celebrity stalls everyone else.
pub fn propagation_chart(reports: &[PropagationReport], path: &PathBuf) -> anyhow::Result<()> {
    let mut svg = String::new();
    {
        let height = 320 * reports.len() as u32;
        let root = SVGBackend::with_string(&mut svg, (900, height)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        for (area, report) in root
            .split_evenly((reports.len(), 1))
            .into_iter()
            .zip(reports)
        {
            let max_ms = report
                .samples
                .iter()
                .map(|sample| sample.1)
                .fold(1.0f64, f64::max)
                * 1.1;
            let mut chart = ChartBuilder::on(&area)
                .caption(
                    format!("{}: post-to-feed delay of each ordinary post", report.label),
                    ("sans-serif", 18),
                )
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(60)
                .build_cartesian_2d(0f64..report.duration_secs, 0f64..max_ms)
                .map_err(plot_error)?;
            chart
                .configure_mesh()
                .x_desc("seconds since start (post sent)")
                .y_desc("ms until in the follower's feed")
                .draw()
                .map_err(plot_error)?;
            if let Some(celebrity) = &report.celebrity {
                let from = report.celebrity_at_secs;
                let to = from + celebrity.last_follower_ms.unwrap_or(0.0) / 1000.0;
                let to = to.max(from + report.duration_secs / 300.0);
                chart
                    .draw_series([Rectangle::new(
                        [(from, 0.0), (to, max_ms)],
                        RGBColor(255, 160, 0).mix(0.3).filled(),
                    )])
                    .map_err(plot_error)?
                    .label(format!(
                        "celebrity fan-out to {} followers",
                        celebrity.followers
                    ))
                    .legend(|(x, y)| {
                        Rectangle::new(
                            [(x, y - 5), (x + 12, y + 5)],
                            RGBColor(255, 160, 0).mix(0.3).filled(),
                        )
                    });
            }
            chart
                .draw_series(
                    report
                        .samples
                        .iter()
                        .map(|&(at, ms)| Circle::new((at, ms), 2, BLUE.filled())),
                )
                .map_err(plot_error)?
                .label("ordinary post")
                .legend(|(x, y)| Circle::new((x + 6, y), 3, BLUE.filled()));
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .position(SeriesLabelPosition::UpperRight)
                .draw()
                .map_err(plot_error)?;
        }
        root.present().map_err(plot_error)?;
    }
    std::fs::write(path, svg).with_context(|| format!("writing {}", path.display()))
}

fn plot_error(error: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("drawing a chart: {error}")
}

#[derive(Debug, clap::Args)]
pub struct LiveArgs {
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub target: String,
    /// One token per line: each opens one socket.
    #[arg(long)]
    pub sockets: PathBuf,
    /// `TOKEN SOCKETS` per line: an author and how many sockets follow them.
    #[arg(long)]
    pub authors: PathBuf,
    /// Posts to send, spread over the authors in turn.
    #[arg(long, default_value_t = 40)]
    pub posts: usize,
    /// Posts per second.
    #[arg(long, default_value_t = 4.0)]
    pub rate: f64,
    /// The server's process id, to read its resident memory before and after the sockets open.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Output JSON file.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct LiveReport {
    pub sockets: usize,
    pub open_secs: f64,
    pub posts: usize,
    pub expected_deliveries: u64,
    pub deliveries: u64,
    pub post_to_socket: Summary,
    pub server_rss_before_kib: Option<u64>,
    pub server_rss_after_kib: Option<u64>,
    pub server_kib_per_socket: Option<f64>,
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

pub async fn live(args: LiveArgs) -> anyhow::Result<LiveReport> {
    let tokens: Vec<String> = read_lines(&args.sockets)?
        .into_iter()
        .filter_map(|line| line.into_iter().next())
        .collect();
    let authors: Vec<(String, u64)> = read_lines(&args.authors)?
        .into_iter()
        .filter_map(|line| Some((line.first()?.clone(), line.get(1)?.parse().ok()?)))
        .collect();
    if tokens.is_empty() || authors.is_empty() {
        bail!("no sockets or no authors to measure with");
    }
    let target = args.target.trim_end_matches('/').to_owned();
    let ws_base = target.replacen("http://", "ws://", 1);
    let rss_before = args.server_pid.and_then(rss_kib);

    // Arrivals are (post id, instant) per socket; latencies are computed once every post's
    // send time is known, since a message can arrive before its POST has answered.
    let arrivals: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let opening = Instant::now();
    let mut readers = tokio::task::JoinSet::new();
    let opened = futures_util::stream::iter(tokens.iter().cloned())
        .map(|token| {
            let url = format!("{ws_base}/post/feed/posted");
            async move {
                let mut request = url.into_client_request()?;
                request
                    .headers_mut()
                    .insert("authorization", format!("Bearer {token}").parse()?);
                let (socket, _) = tokio_tungstenite::connect_async(request).await?;
                anyhow::Ok(socket)
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await;
    let open_secs = opening.elapsed().as_secs_f64();
    for socket in opened {
        let mut socket = socket.context("opening a live socket")?;
        let arrivals = arrivals.clone();
        readers.spawn(async move {
            while let Some(Ok(frame)) = socket.next().await {
                if let Message::Text(text) = frame {
                    let at = Instant::now();
                    if let Ok(body) = serde_json::from_str::<serde_json::Value>(&text)
                        && let Some(id) = body["postId"].as_str()
                    {
                        arrivals
                            .lock()
                            .expect("not poisoned")
                            .push((id.to_owned(), at));
                    }
                }
            }
        });
    }
    // Let presence settle and the server's memory reflect the idle sockets.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = args.server_pid.and_then(rss_kib);

    let client = reqwest::Client::new();
    let interval = Duration::from_secs_f64(1.0 / args.rate);
    let started = Instant::now();
    let mut sent: HashMap<String, Instant> = HashMap::new();
    let mut expected = 0;
    for k in 0..args.posts {
        tokio::time::sleep_until((started + interval.mul_f64(k as f64)).into()).await;
        let (token, followers) = &authors[k % authors.len()];
        let at = Instant::now();
        let id = create_post(&client, &target, token, "live").await?;
        sent.insert(id, at);
        expected += followers;
    }
    // Wait for the stragglers, up to 10 s.
    let deadline = Instant::now() + Duration::from_secs(10);
    while (arrivals.lock().expect("not poisoned").len() as u64) < expected
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    readers.abort_all();
    let mut latencies = histogram();
    let arrivals = std::mem::take(&mut *arrivals.lock().expect("not poisoned"));
    let mut deliveries = 0;
    for (id, at) in &arrivals {
        if let Some(sent_at) = sent.get(id) {
            latencies.saturating_record(micros(at.saturating_duration_since(*sent_at)));
            deliveries += 1;
        }
    }
    let per_socket = match (rss_before, rss_after) {
        (Some(before), Some(after)) => {
            Some(after.saturating_sub(before) as f64 / tokens.len() as f64)
        }
        _ => None,
    };
    Ok(LiveReport {
        sockets: tokens.len(),
        open_secs,
        posts: args.posts,
        expected_deliveries: expected,
        deliveries,
        post_to_socket: summarize(&latencies),
        server_rss_before_kib: rss_before,
        server_rss_after_kib: rss_after,
        server_kib_per_socket: per_socket,
    })
}

fn ms_cell(ms: Option<f64>) -> String {
    match ms {
        Some(ms) if ms >= 1000.0 => format!("{:.2} s", ms / 1000.0),
        Some(ms) => format!("{ms:.1} ms"),
        None => "not within the timeout".into(),
    }
}

/// A Markdown section comparing propagation runs, with the chart embedded as `chart_png`.
pub fn propagation_markdown(reports: &[PropagationReport], chart_png: &str) -> String {
    let mut md = String::new();
    md.push_str(
        "| run | ordinary posts | post-to-feed p50 / p90 / p99 / max | p99 while the celebrity fans out | lost | celebrity followers | celebrity: first follower | celebrity: last follower |\n|---|---:|---|---|---:|---:|---:|---:|\n",
    );
    for report in reports {
        let o = &report.ordinary;
        let during = report
            .ordinary_during_celebrity
            .as_ref()
            .map_or("no post in the window".into(), |d| {
                format!("{} ({} posts)", ms_cell(Some(d.p99_ms)), d.count)
            });
        let (followers, first, last) = match &report.celebrity {
            Some(c) => (
                c.followers.to_string(),
                ms_cell(c.first_follower_ms),
                ms_cell(c.last_follower_ms),
            ),
            None => ("-".into(), "-".into(), "-".into()),
        };
        md.push_str(&format!(
            "| {} | {} at {}/s | {} / {} / {} / {} | {} | {} | {} | {} | {} |\n",
            report.label,
            o.count,
            report.rate,
            ms_cell(Some(o.p50_ms)),
            ms_cell(Some(o.p90_ms)),
            ms_cell(Some(o.p99_ms)),
            ms_cell(Some(o.max_ms)),
            during,
            report.lost,
            followers,
            first,
            last
        ));
    }
    md.push_str(&format!(
        "\n![post-to-feed delay of each ordinary post]({chart_png})\n\n[SVG]({})\n",
        chart_png.replace(".png", ".svg")
    ));
    md
}

/// A Markdown section for one live run.
pub fn live_markdown(report: &LiveReport) -> String {
    let l = &report.post_to_socket;
    let memory = match (
        report.server_rss_before_kib,
        report.server_rss_after_kib,
        report.server_kib_per_socket,
    ) {
        (Some(before), Some(after), Some(per)) => format!(
            "{:.1} KiB per socket (server RSS {:.1} MiB before the sockets opened, {:.1} MiB with them open)",
            per,
            before as f64 / 1024.0,
            after as f64 / 1024.0
        ),
        _ => "not measured".into(),
    };
    format!(
        "| measure | value |\n|---|---|\n\
         | open sockets | {} (opened in {:.1} s) |\n\
         | posts | {} |\n\
         | deliveries | {} of {} expected |\n\
         | post-to-socket p50 / p90 / p99 / max | {} / {} / {} / {} |\n\
         | server memory | {} |\n",
        report.sockets,
        report.open_secs,
        report.posts,
        report.deliveries,
        report.expected_deliveries,
        ms_cell(Some(l.p50_ms)),
        ms_cell(Some(l.p90_ms)),
        ms_cell(Some(l.p99_ms)),
        ms_cell(Some(l.max_ms)),
        memory
    )
}
