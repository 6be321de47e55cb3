//! `agora serve` as a process: what only a whole process shows (its memory, its signals).

mod common;

use common::{amqp_url, free_port, redis_url};

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use agora_platform::testing::TestDatabase;
use serde_json::{Value, json};

struct Server {
    child: Child,
    address: SocketAddr,
    ops: SocketAddr,
}

impl Server {
    async fn start(database: &TestDatabase, extra: &[(&str, &str)]) -> Self {
        Self::start_with_stdout(database, extra, Stdio::null()).await
    }

    async fn start_with_stdout(
        database: &TestDatabase,
        extra: &[(&str, &str)],
        stdout: Stdio,
    ) -> Self {
        let address: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let ops: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_agora"));
        command
            .arg("serve")
            .env("AGORA_DATABASE_URL", &database.url)
            .env("AGORA_REDIS_URL", redis_url())
            .env("AGORA_AMQP_URL", amqp_url())
            .env("AGORA_AMQP_QUEUE_EXPIRES_SECS", "60")
            .env(
                "AGORA_NAMESPACE",
                format!("srvtest{}-{}", std::process::id(), address.port()),
            )
            .env("AGORA_LISTEN", address.to_string())
            .env("AGORA_OPS_LISTEN", ops.to_string())
            .env("AGORA_LOG", "warn")
            .stdout(stdout);
        for (name, value) in extra {
            command.env(name, value);
        }
        let child = command.spawn().expect("starting agora serve");
        let server = Server {
            child,
            address,
            ops,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while reqwest::get(server.url("/health")).await.is_err() {
            assert!(Instant::now() < deadline, "agora serve did not answer");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    fn rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kib: f64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        kib / 1024.0
    }

    fn terminate(&self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn password_hashing_memory_stays_fixed_through_a_login_burst() {
    let database = TestDatabase::create("social", agora_social::migrations).await;
    let server = Server::start(
        &database,
        &[
            ("AGORA_PASSWORD_HASH_CONCURRENCY", "2"),
            ("AGORA_PASSWORD_HASH_QUEUE", "1000"),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let registered: Value = client
        .post(server.url("/user/register"))
        .json(&json!({"first_name": "Пик", "second_name": "Нагрузкин", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = registered["user_id"].as_str().unwrap().to_owned();
    let before = server.rss_mib();
    let logins = (0..300).map(|_| {
        let client = client.clone();
        let url = server.url("/login");
        let id = id.clone();
        async move {
            client
                .post(url)
                .json(&json!({"id": id, "password": "correct horse battery"}))
                .send()
                .await
                .unwrap()
                .status()
        }
    });
    let statuses = futures_util::future::join_all(logins).await;
    assert!(
        statuses.iter().all(|status| status.is_success()),
        "{statuses:?}"
    );
    let after = server.rss_mib();
    eprintln!("RSS before the burst {before:.0} MiB, after 300 concurrent logins {after:.0} MiB");
    // Two hashing threads own 19 MiB each; a fresh allocation per hash grew the server to
    // 450-550 MiB and kept it there.
    assert!(
        after - before < 80.0,
        "RSS grew from {before:.0} to {after:.0} MiB"
    );
}

#[tokio::test]
async fn sigterm_reports_not_ready_and_keeps_serving_while_draining() {
    let database = TestDatabase::create("social", agora_social::migrations).await;
    let server = Server::start(&database, &[("AGORA_SHUTDOWN_DRAIN_MS", "1500")]).await;
    let ready = format!("http://{}/ready", server.ops);
    server.terminate();
    let started = Instant::now();
    // During the drain: not ready, yet new connections are served.
    let mut saw_not_ready = false;
    while started.elapsed() < Duration::from_millis(1_000) {
        let fresh = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        let health = fresh.get(server.url("/health")).send().await;
        assert!(
            health.is_ok_and(|r| r.status().is_success()),
            "refused while draining"
        );
        if let Ok(response) = fresh.get(&ready).send().await {
            saw_not_ready |= response.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(saw_not_ready, "/ready never said 503 while draining");
    // Then the listener closes and the process exits.
    let deadline = Instant::now() + Duration::from_secs(10);
    while reqwest::get(server.url("/health")).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "still serving 10 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whoever reads the server's stdout (a terminal, a container runtime, a log shipper) stops
/// reading: the pipe fills, and requests must neither stall nor slow down. Each request below
/// writes an access line; the pipe holds about 300 of them.
#[tokio::test]
async fn a_stalled_log_reader_does_not_stall_requests() {
    use std::io::Read;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let database = TestDatabase::create("social", agora_social::migrations).await;
    let mut server = Server::start_with_stdout(
        &database,
        &[("AGORA_LOG", "info"), ("AGORA_LOG_BUFFER_LINES", "1024")],
        Stdio::piped(),
    )
    .await;
    let mut stdout = server.child.stdout.take().unwrap();
    let paused = Arc::new(AtomicBool::new(false));
    let reader = {
        let paused = paused.clone();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 65536];
            loop {
                if paused.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
                match stdout.read(&mut buffer) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
    };
    // Requests that each log an access line ("request finished", a 404).
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let run = |label: &'static str| {
        let (client, url) = (client.clone(), server.url("/no/such/page"));
        async move {
            let started = Instant::now();
            let mut latencies = Vec::new();
            let mut tasks = Vec::new();
            for _ in 0..8 {
                let (client, url) = (client.clone(), url.clone());
                tasks.push(tokio::spawn(async move {
                    let mut mine = Vec::new();
                    for _ in 0..300 {
                        let sent = Instant::now();
                        let response = client.get(&url).send().await.expect("an answer");
                        assert_eq!(response.status(), 404);
                        mine.push(sent.elapsed());
                    }
                    mine
                }));
            }
            for task in tasks {
                latencies.extend(task.await.unwrap());
            }
            let rate = latencies.len() as f64 / started.elapsed().as_secs_f64();
            latencies.sort();
            let p99 = latencies[latencies.len() * 99 / 100];
            println!(
                "{label}: {rate:.0} requests/s, p99 {:.2} ms",
                p99.as_secs_f64() * 1e3
            );
            (rate, p99)
        }
    };
    let (calm_rate, calm_p99) = run("reader reading").await;
    paused.store(true, Ordering::Relaxed);
    let (stalled_rate, stalled_p99) = run("reader stopped").await;
    // The count of dropped lines is published once a second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let metrics = reqwest::get(format!("http://{}/metrics", server.ops))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let dropped: f64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix("log_lines_dropped_total "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0.0);
    paused.store(false, Ordering::Relaxed);
    let (calm_again, _) = run("reader reading again (for the noise)").await;
    println!(
        "stalled/calm: rate {:.2}, p99 {:.2}; {dropped} log lines dropped",
        stalled_rate / calm_rate.max(calm_again),
        stalled_p99.as_secs_f64() / calm_p99.as_secs_f64()
    );
    assert!(
        dropped > 0.0,
        "the writer never dropped a line: was the pipe ever full?"
    );
    // Same two cores, same run: a stall would be seconds, not a few per cent. The bounds leave
    // room for the machine's noise.
    assert!(
        stalled_rate >= 0.5 * calm_rate.min(calm_again),
        "requests slowed down while the log reader stalled"
    );
    assert!(
        stalled_p99 <= calm_p99 * 3 + Duration::from_millis(20),
        "p99 grew while the log reader stalled"
    );
    drop(server);
    let _ = reader.join();
}
