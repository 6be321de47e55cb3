//! Two workload models on raw hyper connections, each client owning one keep-alive HTTP/1.1
//! connection:
//!
//! - **closed**: N clients; each sends a request, waits for the whole reply, records, repeats.
//!   Latency counts from the moment the request is sent.
//! - **open**: requests are *scheduled* at a fixed rate (request k is due at `epoch + k/rate`)
//!   and N connections take the next due request whenever they are free. Latency counts from
//!   the due time, not from when a connection got round to sending it, so a stalled server is
//!   charged for every request that should have gone out meanwhile (no coordinated omission,
//!   the flaw Gil Tene describes in wrk and most closed-loop tools). Requests still unsent when
//!   the measured phase ends are reported as the outcome `unsent`, not silently dropped.
//!
//! Memory is bounded whatever the duration: each client keeps one histogram for the current
//! second and folds it into the shared per-second slot when the second changes, so the shared
//! lock is taken once per client per second, not per request.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::Mutex;

use crate::model::{LatencySummary, Point, Second};

/// What one series requests: requests cycled through by every client, with an optional token
/// for those that carry none of their own.
#[derive(Debug, Clone)]
pub struct Workload {
    pub target: SocketAddr,
    pub host_header: String,
    pub requests: Arc<Vec<RequestLine>>,
    pub bearer: Option<String>,
    /// Send tokens as this cookie instead of a bearer header (a browser's session).
    pub token_cookie: Option<String>,
}

/// One request: a GET of a path, or a POST or PUT of a JSON body, and the bearer token of the
/// user it is made as, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLine {
    pub method: hyper::Method,
    pub path: String,
    pub bearer: Option<String>,
    /// A JSON body to send; `None` for a GET.
    pub body: Option<Bytes>,
}

impl RequestLine {
    pub fn path(path: impl Into<String>) -> Self {
        Self {
            method: hyper::Method::GET,
            path: path.into(),
            bearer: None,
            body: None,
        }
    }
}

/// When each request is due.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pacing {
    /// As soon as the client's previous request has completed.
    Closed,
    /// At a fixed arrival rate (requests/s) shared by all connections.
    Open { rate: f64 },
}

#[derive(Debug, Clone, Copy)]
pub struct Phase {
    pub pacing: Pacing,
    pub concurrency: u32,
    pub warmup: Duration,
    pub duration: Duration,
    pub timeout: Duration,
}

fn histogram() -> Histogram<u64> {
    // 1 µs to 120 s at 3 significant digits: what HdrHistogram users expect.
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("static bounds are valid")
}

#[derive(Default)]
struct SecondSlot {
    ok: u64,
    errors: u64,
    latency: Option<Histogram<u64>>,
}

struct Shared {
    seconds: Mutex<Vec<SecondSlot>>,
    total: Mutex<Histogram<u64>>,
    outcomes: Mutex<BTreeMap<String, u64>>,
    in_flight: AtomicU64,
    recording: AtomicBool,
    stop: AtomicBool,
    ok_live: AtomicU64,
    errors_live: AtomicU64,
}

/// Hands out due times in the open model: request k is due at `epoch + k * interval`.
struct Schedule {
    epoch: Instant,
    interval: Duration,
    next: AtomicU64,
    /// Taken by a connection that then saw the phase end before sending it.
    abandoned: AtomicU64,
}

impl Schedule {
    fn due(&self, k: u64) -> Instant {
        self.epoch + self.interval.mul_f64(k as f64)
    }

    /// How many requests were due at `at` (k = 0 is due at the epoch).
    fn due_by(&self, at: Instant) -> u64 {
        let elapsed = at.saturating_duration_since(self.epoch).as_secs_f64();
        (elapsed / self.interval.as_secs_f64()).floor() as u64 + 1
    }
}

/// Runs one load level and returns its point.
pub async fn run(workload: &Workload, phase: Phase, label: &str) -> Point {
    let shared = Arc::new(Shared {
        seconds: Mutex::new(Vec::new()),
        total: Mutex::new(histogram()),
        outcomes: Mutex::new(BTreeMap::new()),
        in_flight: AtomicU64::new(0),
        recording: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        ok_live: AtomicU64::new(0),
        errors_live: AtomicU64::new(0),
    });
    let measure_start = Arc::new(std::sync::OnceLock::<Instant>::new());
    let schedule = match phase.pacing {
        Pacing::Closed => None,
        Pacing::Open { rate } => Some(Arc::new(Schedule {
            epoch: Instant::now(),
            interval: Duration::from_secs_f64(1.0 / rate.max(0.001)),
            next: AtomicU64::new(0),
            abandoned: AtomicU64::new(0),
        })),
    };
    let mut clients = tokio::task::JoinSet::new();
    for client in 0..phase.concurrency {
        clients.spawn(client_loop(
            workload.clone(),
            phase,
            client as usize,
            shared.clone(),
            measure_start.clone(),
            schedule.clone(),
        ));
    }
    tokio::time::sleep(phase.warmup).await;
    let started = Instant::now();
    let _ = measure_start.set(started);
    shared.recording.store(true, Ordering::SeqCst);
    let seconds = phase.duration.as_secs().max(1);
    let mut in_flight_by_second = Vec::with_capacity(seconds as usize);
    for second in 1..=seconds {
        tokio::time::sleep_until((started + Duration::from_secs(second)).into()).await;
        in_flight_by_second.push(shared.in_flight.load(Ordering::Relaxed));
        let ok = shared.ok_live.load(Ordering::Relaxed);
        let errors = shared.errors_live.load(Ordering::Relaxed);
        let level = match phase.pacing {
            Pacing::Closed => format!("c={}", phase.concurrency),
            Pacing::Open { rate } => format!("rate={rate} conns={}", phase.concurrency),
        };
        eprint!(
            "\r{label}: {level} {second}/{seconds}s ok={ok} errors={errors} rps={:.0}   ",
            ok as f64 / second as f64
        );
        let _ = std::io::stderr().flush();
    }
    let ended = Instant::now();
    shared.recording.store(false, Ordering::SeqCst);
    let measured = ended.duration_since(started).as_secs_f64();
    shared.stop.store(true, Ordering::SeqCst);
    // Clients finish their current request (bounded by the timeout) and flush.
    while clients.join_next().await.is_some() {}
    eprintln!();
    if let Some(schedule) = &schedule {
        // Due inside the measured window but never taken by a connection: the backlog a
        // too-slow target left behind. Counting them keeps the error rate honest.
        let taken =
            schedule.next.load(Ordering::SeqCst) - schedule.abandoned.load(Ordering::SeqCst);
        let window_start = schedule.due_by(started);
        // Requests due in the last moments may be on their way out as the window closes:
        // only those overdue by more than a grace period count.
        let grace = schedule.interval + Duration::from_millis(10);
        let overdue_by = ended.checked_sub(grace).unwrap_or(ended);
        let unsent = schedule
            .due_by(overdue_by)
            .saturating_sub(taken.max(window_start));
        if unsent > 0 {
            *shared
                .outcomes
                .lock()
                .await
                .entry("unsent".into())
                .or_default() += unsent;
        }
    }
    let mut point = summarize(
        &shared,
        phase.concurrency,
        measured,
        seconds as usize,
        &in_flight_by_second,
    )
    .await;
    if let Pacing::Open { rate } = phase.pacing {
        point.target_rate = Some(rate);
        point.errors += point.outcomes.get("unsent").copied().unwrap_or(0);
    }
    point
}

async fn connect(workload: &Workload) -> Option<http1::SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(workload.target).await.ok()?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await.ok()?;
    tokio::spawn(connection);
    Some(sender)
}

async fn client_loop(
    workload: Workload,
    phase: Phase,
    client: usize,
    shared: Arc<Shared>,
    measure_start: Arc<std::sync::OnceLock<Instant>>,
    schedule: Option<Arc<Schedule>>,
) {
    let mut sender = None;
    let mut index = client.wrapping_mul(7919);
    let mut local = histogram();
    let mut local_second: Option<usize> = None;
    let (mut local_ok, mut local_errors) = (0u64, 0u64);
    let mut outcomes: BTreeMap<Result<u16, &'static str>, u64> = BTreeMap::new();
    while !shared.stop.load(Ordering::Relaxed) {
        if sender.is_none() {
            sender = connect(&workload).await;
        }
        let line = &workload.requests[index % workload.requests.len()];
        index = index.wrapping_add(1);
        let sent = match &schedule {
            None => Instant::now(),
            Some(schedule) => {
                let due = schedule.due(schedule.next.fetch_add(1, Ordering::Relaxed));
                if due > Instant::now() {
                    tokio::time::sleep_until(due.into()).await;
                }
                if shared.stop.load(Ordering::Relaxed) {
                    schedule.abandoned.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                due
            }
        };
        shared.in_flight.fetch_add(1, Ordering::Relaxed);
        let outcome = match sender.as_mut() {
            None => {
                // Not connected: count it and back off briefly so a dead server is not spun on.
                tokio::time::sleep(Duration::from_millis(10)).await;
                Err("connect")
            }
            Some(connection) => {
                let request = build_request(&workload, line);
                let exchange = async {
                    // Await readiness first: a connection the server closed is noticed here.
                    connection.ready().await.map_err(|_| "connection")?;
                    let response = connection
                        .send_request(request)
                        .await
                        .map_err(|_| "connection")?;
                    let status = response.status().as_u16();
                    response.into_body().collect().await.map_err(|_| "body")?;
                    Ok::<u16, &'static str>(status)
                };
                match tokio::time::timeout(phase.timeout, exchange).await {
                    Ok(Ok(status)) => Ok(status),
                    Ok(Err(kind)) => Err(kind),
                    Err(_) => Err("timeout"),
                }
            }
        };
        shared.in_flight.fetch_sub(1, Ordering::Relaxed);
        let latency_us = sent.elapsed().as_micros().max(1) as u64;
        if outcome.is_err() {
            sender = None; // reconnect after any transport error
        }
        if !shared.recording.load(Ordering::Relaxed) {
            continue;
        }
        let Some(start) = measure_start.get() else {
            continue;
        };
        let second = sent.saturating_duration_since(*start).as_secs() as usize;
        if local_second != Some(second) {
            flush(
                &shared,
                local_second,
                &mut local,
                &mut local_ok,
                &mut local_errors,
            )
            .await;
            local_second = Some(second);
        }
        let success = matches!(outcome, Ok(status) if (200..300).contains(&status));
        if success {
            local_ok += 1;
            shared.ok_live.fetch_add(1, Ordering::Relaxed);
            let _ = local.record(latency_us);
        } else {
            local_errors += 1;
            shared.errors_live.fetch_add(1, Ordering::Relaxed);
        }
        *outcomes.entry(outcome).or_default() += 1;
    }
    flush(
        &shared,
        local_second,
        &mut local,
        &mut local_ok,
        &mut local_errors,
    )
    .await;
    let mut shared_outcomes = shared.outcomes.lock().await;
    for (outcome, count) in outcomes {
        // Named only here, once per client, not once per request.
        let key = match outcome {
            Ok(status) => status.to_string(),
            Err(kind) => kind.to_owned(),
        };
        *shared_outcomes.entry(key).or_default() += count;
    }
}

fn build_request(workload: &Workload, line: &RequestLine) -> Request<Full<Bytes>> {
    let mut builder = Request::builder()
        .method(line.method.clone())
        .uri(line.path.as_str())
        .header(hyper::header::HOST, &workload.host_header);
    if line.body.is_some() {
        builder = builder.header(hyper::header::CONTENT_TYPE, "application/json");
    }
    if let Some(token) = line.bearer.as_ref().or(workload.bearer.as_ref()) {
        builder = match &workload.token_cookie {
            Some(cookie) => builder.header(hyper::header::COOKIE, format!("{cookie}={token}")),
            None => builder.header(hyper::header::AUTHORIZATION, format!("Bearer {token}")),
        };
    }
    builder
        .body(Full::new(line.body.clone().unwrap_or_default()))
        .expect("paths were validated when the workload was built")
}

async fn flush(
    shared: &Shared,
    second: Option<usize>,
    local: &mut Histogram<u64>,
    ok: &mut u64,
    errors: &mut u64,
) {
    let Some(second) = second else { return };
    {
        let mut seconds = shared.seconds.lock().await;
        if seconds.len() <= second {
            seconds.resize_with(second + 1, SecondSlot::default);
        }
        let slot = &mut seconds[second];
        slot.ok += *ok;
        slot.errors += *errors;
        match slot.latency.as_mut() {
            Some(histogram) => {
                let _ = histogram.add(&*local);
            }
            None => slot.latency = Some(local.clone()),
        }
    }
    let _ = shared.total.lock().await.add(&*local);
    local.reset();
    *ok = 0;
    *errors = 0;
}

async fn summarize(
    shared: &Shared,
    concurrency: u32,
    measured: f64,
    seconds: usize,
    in_flight: &[u64],
) -> Point {
    let total = shared.total.lock().await;
    let slots = shared.seconds.lock().await;
    let ok: u64 = slots.iter().take(seconds).map(|slot| slot.ok).sum();
    let errors: u64 = slots.iter().take(seconds).map(|slot| slot.errors).sum();
    let latency = if total.is_empty() {
        LatencySummary::default()
    } else {
        LatencySummary {
            mean_us: total.mean(),
            p50_us: total.value_at_quantile(0.50),
            p90_us: total.value_at_quantile(0.90),
            p99_us: total.value_at_quantile(0.99),
            p999_us: total.value_at_quantile(0.999),
            max_us: total.max(),
        }
    };
    let timeline = (0..seconds)
        .map(|t| {
            let slot = slots.get(t);
            let quantile = |q: f64| {
                slot.and_then(|s| s.latency.as_ref())
                    .map_or(0, |h| h.value_at_quantile(q))
            };
            Second {
                t: t as u32 + 1,
                ok: slot.map_or(0, |s| s.ok),
                errors: slot.map_or(0, |s| s.errors),
                p50_us: quantile(0.5),
                p99_us: quantile(0.99),
                in_flight: in_flight.get(t).copied().unwrap_or(0),
            }
        })
        .collect();
    let distribution = if total.is_empty() {
        Vec::new()
    } else {
        [
            0.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 99.999, 100.0,
        ]
        .iter()
        .map(|&p| (p, total.value_at_quantile(p / 100.0)))
        .collect()
    };
    Point {
        concurrency,
        target_rate: None,
        duration_secs: measured,
        ok,
        errors,
        outcomes: shared.outcomes.lock().await.clone(),
        throughput_rps: ok as f64 / measured,
        latency,
        timeline,
        distribution,
    }
}
