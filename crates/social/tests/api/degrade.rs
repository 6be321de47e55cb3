//! Dependencies that fail or stall: the database's durability and statement timeout, and a
//! Redis that stops answering, which requests skip instead of waiting for.

use std::time::{Duration, Instant};

use agora_platform::testing::TestDatabase;
use reqwest::StatusCode;

use crate::common::{TestApp, config_for};

#[tokio::test]
async fn the_test_database_server_is_durable() {
    let app = TestApp::spawn().await;
    let sql = app.sql().await;
    for setting in ["fsync", "synchronous_commit", "full_page_writes"] {
        let value: String = sql
            .query_one(&format!("SHOW {setting}"), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(
            value, "on",
            "{setting} must be on for fault tests to prove anything"
        );
    }
}

#[tokio::test]
async fn a_query_past_the_statement_timeout_is_cancelled() {
    let database = TestDatabase::create("social", agora_social::migrations).await;
    let mut config = config_for(&database.url).platform.database;
    config.statement_timeout_ms = 100;
    let pool = agora_platform::db::connect_pool(&config, "timeout-test").unwrap();
    let connection = pool.get().await.unwrap();
    let started = Instant::now();
    let error = connection
        .query("SELECT pg_sleep(5)", &[])
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(matches!(
        agora_platform::db::DbError::from(error),
        agora_platform::db::DbError::TimedOut(_)
    ));
}

/// A Redis server of this test's own, so that stopping it disturbs no other test.
struct PrivateRedis {
    child: std::process::Child,
    url: String,
}

impl PrivateRedis {
    async fn start() -> Self {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (./dev test installs it)");
        let url = format!("redis://127.0.0.1:{port}");
        crate::common::eventually("the private Redis answers", || async {
            let client = redis::Client::open(url.as_str()).ok()?;
            client
                .get_multiplexed_async_connection()
                .await
                .ok()
                .map(|_| ())
        })
        .await;
        Self { child, url }
    }

    fn signal(&self, signal: &str) {
        std::process::Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.signal("-CONT");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Feed reads by 4 clients for `secs`: (reads per second, p99 of those sent after `skip`).
async fn feed_load(app: &TestApp, token: &str, secs: u64, skip: Duration) -> (f64, Duration) {
    let started = Instant::now();
    let until = started + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (client, url, token) = (app.client.clone(), app.url("/post/feed"), token.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < until {
                let sent = Instant::now();
                let response = client.get(&url).bearer_auth(&token).send().await.unwrap();
                assert_eq!(response.status(), StatusCode::OK);
                latencies.push((sent, sent.elapsed()));
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let rate = all.len() as f64 / started.elapsed().as_secs_f64();
    let mut late: Vec<Duration> = all
        .iter()
        .filter(|(sent, _)| *sent >= started + skip)
        .map(|(_, took)| *took)
        .collect();
    late.sort();
    (rate, late[late.len() * 99 / 100])
}

/// Redis stops answering (SIGSTOP) under feed reads: after the first second the circuit
/// breaker skips it, and reads come from PostgreSQL at full speed instead of each waiting for
/// Redis's timeout. When Redis returns, the cache is used again.
#[tokio::test]
async fn a_stalled_redis_is_skipped_not_waited_for() {
    let redis = PrivateRedis::start().await;
    let app =
        TestApp::spawn_configured(|config| config.platform.redis.url = redis.url.clone()).await;
    let (author, author_token) = app.user("Автор", "Кэшев").await;
    let (_, reader) = app.user("Читатель", "Кэшев").await;
    let response = app
        .put(&format!("/friend/set/{author}"), Some(&reader))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    for n in 0..20 {
        app.post(&author_token, &format!("post {n}")).await;
    }
    let (calm_rate, calm_p99) = feed_load(&app, &reader, 3, Duration::ZERO).await;
    redis.signal("-STOP");
    let (stalled_rate, stalled_p99) = feed_load(&app, &reader, 8, Duration::from_secs(1)).await;
    redis.signal("-CONT");
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    println!(
        "feed reads: {calm_rate:.0}/s (p99 {:.1} ms) with Redis, {stalled_rate:.0}/s (p99 after \
         the first second {:.1} ms) with Redis stopped: {:.0} %",
        calm_p99.as_secs_f64() * 1e3,
        stalled_p99.as_secs_f64() * 1e3,
        100.0 * stalled_rate / calm_rate
    );
    assert!(
        metrics.contains("redis_circuit_opened_total"),
        "the breaker never opened"
    );
    assert!(
        stalled_rate >= 0.5 * calm_rate,
        "reads fell to {stalled_rate:.0}/s from {calm_rate:.0}/s"
    );
    assert!(
        stalled_p99 <= Duration::from_millis(100),
        "p99 {stalled_p99:?} with Redis stopped"
    );
    // Back: the breaker's probe finds Redis and the cache serves again.
    crate::common::eventually("reads from the cache again", || async {
        app.feed(&reader, 0, 10).await;
        let metrics = app.get("/metrics", None).await.text().await.unwrap();
        metrics.contains("redis_circuit_open 0").then_some(())
    })
    .await;
}
