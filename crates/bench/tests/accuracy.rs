//! The load tool's own numbers, checked against servers whose behaviour is known and against
//! wrk (the Debian package) measuring the same server.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agora_bench::engine::{Pacing, Phase, RequestLine, Workload, run};
use agora_bench::model::Point;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// How far our throughput and median may differ from wrk's on the same server.
const WRK_TOLERANCE: f64 = 0.10;

/// When the test server delays its answers.
#[derive(Clone, Copy)]
enum Behaviour {
    /// Every answer after this delay.
    Delay(Duration),
    /// Answers at once, except that from `from` after start until `until` everything waits.
    Stall { from: Duration, until: Duration },
}

/// A minimal keep-alive HTTP/1.1 server: every GET gets "200 ok". Written on raw sockets so
/// that nothing between the tools and the socket adds its own latency.
async fn serve(behaviour: Behaviour) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let started = Instant::now();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                continue;
            };
            let _ = socket.set_nodelay(true);
            tokio::spawn(async move {
                let mut buffer = Vec::with_capacity(4096);
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(read) = socket.read(&mut chunk).await else {
                        return;
                    };
                    if read == 0 {
                        return;
                    }
                    buffer.extend_from_slice(&chunk[..read]);
                    while let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                        buffer.drain(..end + 4);
                        match behaviour {
                            Behaviour::Delay(delay) => tokio::time::sleep(delay).await,
                            Behaviour::Stall { from, until } => {
                                let now = started.elapsed();
                                if now >= from && now < until {
                                    tokio::time::sleep(until - now).await;
                                }
                            }
                        }
                        let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: text/plain\r\n\r\nok";
                        if socket.write_all(reply).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    address
}

fn workload(target: SocketAddr) -> Workload {
    Workload {
        target,
        host_header: target.to_string(),
        requests: Arc::new(vec![RequestLine::path("/")]),
        bearer: None,
        token_cookie: None,
    }
}

async fn measure(target: SocketAddr, pacing: Pacing, connections: u32, secs: f64) -> Point {
    let phase = Phase {
        pacing,
        concurrency: connections,
        warmup: Duration::from_millis(500),
        duration: Duration::from_secs_f64(secs),
        timeout: Duration::from_secs(10),
    };
    run(&workload(target), phase, "test").await
}

/// wrk's requests/s and median latency in µs, from its `--latency` report.
fn wrk(target: SocketAddr, connections: u32, secs: u32) -> Option<(f64, f64)> {
    let output = match Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{connections}"),
            &format!("-d{secs}s"),
            "--latency",
            &format!("http://{target}/"),
        ])
        .output()
    {
        Ok(output) => output,
        Err(_) if std::env::var_os("AGORA_REQUIRE_WRK").is_none() => {
            eprintln!("wrk is not installed: skipping the comparison (./dev test installs it)");
            return None;
        }
        Err(error) => panic!("wrk is required here (AGORA_REQUIRE_WRK is set): {error}"),
    };
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "wrk failed: {text}");
    let rps = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk output:\n{text}"));
    let median = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("50%"))
        .map(|v| parse_wrk_duration(v.trim()))
        .unwrap_or_else(|| panic!("no 50% line in wrk output:\n{text}"));
    Some((rps, median))
}

fn parse_wrk_duration(text: &str) -> f64 {
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().unwrap();
    value
        * match unit {
            "us" => 1.0,
            "ms" => 1_000.0,
            "s" => 1_000_000.0,
            "m" => 60_000_000.0,
            other => panic!("unknown wrk unit {other:?}"),
        }
}

fn relative_difference(ours: f64, theirs: f64) -> f64 {
    (ours - theirs).abs() / theirs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_model_agrees_with_wrk_on_a_server_with_known_latency() {
    // 10 ms per answer and 10 connections: both tools should see ~1000 rps and a ~10 ms median,
    // and neither is CPU-bound, so the comparison is about measuring, not about speed.
    let target = serve(Behaviour::Delay(Duration::from_millis(10))).await;
    let ours = measure(target, Pacing::Closed, 10, 3.0).await;
    assert_eq!(ours.errors, 0, "{:?}", ours.outcomes);
    let median_us = ours.latency.p50_us as f64;
    assert!(
        (10_000.0..13_000.0).contains(&median_us),
        "median {median_us} µs for a 10 ms server"
    );
    let Some((wrk_rps, wrk_median_us)) = tokio::task::spawn_blocking(move || wrk(target, 10, 3))
        .await
        .unwrap()
    else {
        return;
    };
    let rps_gap = relative_difference(ours.throughput_rps, wrk_rps);
    let median_gap = relative_difference(median_us, wrk_median_us);
    assert!(
        rps_gap <= WRK_TOLERANCE && median_gap <= WRK_TOLERANCE,
        "ours {:.0} rps, median {median_us} µs; wrk {wrk_rps:.0} rps, median {wrk_median_us} µs",
        ours.throughput_rps
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_model_charges_a_stall_to_every_request_due_during_it() {
    // The server stalls for one second in the middle of the measured window. A closed loop of 4
    // clients sends only 4 requests during the stall and reports a fine p99 (coordinated
    // omission); the open model at 200 rps has ~200 requests due in that second and must see
    // their waiting.
    let stall = |offset: f64| Behaviour::Stall {
        from: Duration::from_secs_f64(offset + 1.5),
        until: Duration::from_secs_f64(offset + 2.5),
    };
    let closed = measure(serve(stall(0.0)).await, Pacing::Closed, 4, 3.0).await;
    let open = measure(
        serve(stall(0.0)).await,
        Pacing::Open { rate: 200.0 },
        4,
        3.0,
    )
    .await;
    assert!(
        closed.latency.p90_us < 50_000,
        "closed p90 {} µs",
        closed.latency.p90_us
    );
    assert!(
        open.latency.p90_us > 300_000,
        "open p90 {} µs should carry the 1 s stall",
        open.latency.p90_us
    );
    assert!(
        (170.0..230.0).contains(&open.throughput_rps),
        "open model at 200 rps delivered {:.0} rps",
        open.throughput_rps
    );
    assert_eq!(open.target_rate, Some(200.0));
    assert_eq!(open.errors, 0, "{:?}", open.outcomes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_model_reports_requests_it_could_not_send() {
    // One connection to a 50 ms server carries at most 20 rps; 100 rps were asked for, so
    // most of the schedule is still unsent when the window closes, and must be counted.
    let target = serve(Behaviour::Delay(Duration::from_millis(50))).await;
    let point = measure(target, Pacing::Open { rate: 100.0 }, 1, 2.0).await;
    let unsent = point.outcomes.get("unsent").copied().unwrap_or(0);
    assert!(
        unsent >= 100,
        "unsent {unsent}, outcomes {:?}",
        point.outcomes
    );
    assert!(point.errors >= unsent);
    assert!(point.throughput_rps < 25.0);
}
