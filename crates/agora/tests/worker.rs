//! `agora worker` killed with SIGKILL in the middle of a fan-out: every feed still gets the post,
//! in about the time a fan-out takes without faults, not after a broker timeout.

mod common;

use common::{amqp_url, redis_url};

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use agora_platform::testing::TestDatabase;
use tokio_postgres::NoTls;

const FOLLOWERS: usize = 3000;

struct Worker {
    database_url: String,
    namespace: String,
    amqp_url: String,
}

/// A worker process, killed when dropped (a failing test must not leave it running).
struct Running(Child);

impl Running {
    fn kill(&mut self) {
        let _ = self.0.kill(); // SIGKILL: no goodbye to the broker or the database
        let _ = self.0.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Worker {
    fn spawn(&self) -> Running {
        Running(self.start())
    }

    fn start(&self) -> Child {
        Command::new(env!("CARGO_BIN_EXE_agora"))
            .arg("worker")
            .env("AGORA_DATABASE_URL", &self.database_url)
            .env("AGORA_REDIS_URL", redis_url())
            .env("AGORA_AMQP_URL", &self.amqp_url)
            .env("AGORA_AMQP_QUEUE_EXPIRES_SECS", "60")
            .env("AGORA_NAMESPACE", &self.namespace)
            // Thirty chained batches, so a kill lands in the middle of the chain.
            .env("AGORA_FEED_FANOUT_BATCH", "100")
            .env("AGORA_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("starting agora worker")
    }
}

/// How many of `keys` hold `post` (8-byte big-endian ids after a flag byte).
async fn feeds_holding(
    redis: &mut redis::aio::MultiplexedConnection,
    keys: &[String],
    post: i64,
) -> usize {
    let feeds: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
        .arg(keys)
        .query_async(redis)
        .await
        .unwrap();
    let id = post.to_be_bytes();
    feeds
        .iter()
        .flatten()
        .filter(|feed| feed.len() > 1 && feed[1..].chunks_exact(8).any(|entry| entry == id))
        .count()
}

/// A user row to post as (no password: nobody signs in).
async fn insert_author(sql: &tokio_postgres::Client) -> i64 {
    sql.query_one(
        "INSERT INTO users (first_name, second_name, password_hash) VALUES ('A', 'B', 'x') RETURNING id",
        &[],
    )
    .await
    .unwrap()
    .get(0)
}

/// Posts as the server does (post and outbox row in one transaction, then a wake for the
/// relay); returns the post id.
async fn post(sql: &tokio_postgres::Client, author: i64) -> i64 {
    let row = sql
        .query_one(
            "WITH p AS (INSERT INTO posts (author_id, text) VALUES ($1, 'news') RETURNING id), \
                  o AS (INSERT INTO feed_outbox (kind, actor_id, subject_id) \
                        SELECT 'post_created', $1, id FROM p) \
             SELECT id FROM p",
            &[&author],
        )
        .await
        .unwrap();
    // The server wakes the relay after the commit, the same way.
    sql.execute("SELECT pg_notify('feed_outbox', '')", &[])
        .await
        .unwrap();
    row.get(0)
}

/// A TCP relay to the broker that, when its client dies, keeps the broker's side open and
/// silent: what a broker sees when a worker's host or network vanishes rather than its process.
/// Only heartbeats tell the broker the worker is gone.
async fn silent_when_client_dies(upstream: std::net::SocketAddr) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut orphans = Vec::new();
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                continue;
            };
            let (mut client_read, mut client_write) = client.into_split();
            let (mut server_read, mut server_write) = server.into_split();
            let (orphan_tx, orphan_rx) = tokio::sync::oneshot::channel();
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
                // The client is gone: hold the broker's side open, saying nothing.
                let _ = orphan_tx.send(server_write);
            });
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
            });
            orphans.push(orphan_rx);
        }
    });
    address
}

fn url_through(url: &str, address: std::net::SocketAddr) -> String {
    let (scheme_and_user, rest) = url.split_once('@').unwrap();
    let (_, path) = rest.split_once('/').unwrap();
    format!("{scheme_and_user}@{address}/{path}")
}

#[tokio::test]
async fn a_killed_worker_delays_a_fan_out_by_seconds_not_a_minute() {
    fan_out_through_kills(false).await;
}

#[tokio::test]
async fn a_worker_that_vanishes_silently_is_replaced_within_heartbeats() {
    fan_out_through_kills(true).await;
}

async fn fan_out_through_kills(silent: bool) {
    let database = TestDatabase::create("social", agora_social::migrations).await;
    let namespace = format!(
        "workertest{}{}",
        std::process::id(),
        if silent { "s" } else { "" }
    );
    let (sql, connection) = tokio_postgres::connect(&database.url, NoTls).await.unwrap();
    tokio::spawn(connection);
    let author = insert_author(&sql).await;
    let followers: Vec<i64> = sql
        .query(
            "WITH u AS (INSERT INTO users (first_name, second_name, password_hash) \
                        SELECT 'F', 'F' || i, 'x' FROM generate_series(1, $1::int) i RETURNING id) \
             INSERT INTO friendships (user_id, friend_id) SELECT id, $2 FROM u RETURNING user_id",
            &[&(FOLLOWERS as i32), &author],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    // Active (cached, empty) feeds: only those get pushes.
    let redis_client = redis::Client::open(redis_url()).unwrap();
    let mut redis = redis_client
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<String> = followers
        .iter()
        .map(|id| format!("{namespace}:feed:{id}"))
        .collect();
    let mut pipe = redis::pipe();
    for key in &keys {
        pipe.cmd("SET")
            .arg(key)
            .arg("1")
            .arg("EX")
            .arg(600)
            .ignore();
    }
    pipe.query_async::<()>(&mut redis).await.unwrap();

    let amqp_url = if silent {
        let broker: std::net::SocketAddr = amqp_url()
            .split_once('@')
            .unwrap()
            .1
            .split_once('/')
            .unwrap()
            .0
            .parse()
            .unwrap();
        url_through(&amqp_url(), silent_when_client_dies(broker).await)
    } else {
        amqp_url()
    };
    let worker = Worker {
        database_url: database.url.clone(),
        namespace: namespace.clone(),
        amqp_url,
    };
    // Silent deaths cost a heartbeat timeout each: one is enough to show it is bounded.
    let max_kills = if silent { 1 } else { 2 };
    let mut child = worker.spawn();

    // Fault-free: how long one fan-out to every follower takes here.
    let started = Instant::now();
    let first = post(&sql, author).await;
    while feeds_holding(&mut redis, &keys, first).await < FOLLOWERS {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "fault-free fan-out did not finish"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let fault_free = started.elapsed();

    // The same, with the worker killed twice along the way.
    let started = Instant::now();
    let second = post(&sql, author).await;
    let mut kills = 0;
    loop {
        let done = feeds_holding(&mut redis, &keys, second).await;
        if done == FOLLOWERS {
            break;
        }
        if kills < max_kills
            && ((kills == 0 && done >= FOLLOWERS / 10) || (kills == 1 && done >= FOLLOWERS / 2))
        {
            child.kill();
            child = worker.spawn();
            kills += 1;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "{done}/{FOLLOWERS} feeds after 90 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let with_faults = started.elapsed();
    drop(child);
    eprintln!(
        "fan-out to {FOLLOWERS} feeds: {fault_free:?} without faults, {with_faults:?} with {kills} SIGKILLs of the worker"
    );
    assert!(
        kills >= 1,
        "the fan-out finished before the worker could be killed"
    );
    // Redelivery after a kill is immediate when the broker sees the connection close, and
    // bounded by missed 5 s heartbeats when it does not (RabbitMQ's default of 60 s stalled
    // such a fan-out for about a minute).
    let bound = if silent { 25 } else { 5 };
    assert!(
        with_faults < fault_free + Duration::from_secs(bound),
        "with faults {with_faults:?}, without {fault_free:?}"
    );
    // Every feed holds the post exactly once.
    let feeds: Vec<Vec<u8>> = redis::cmd("MGET")
        .arg(&keys)
        .query_async(&mut redis)
        .await
        .unwrap();
    for feed in feeds {
        let id = second.to_be_bytes();
        assert_eq!(
            feed[1..]
                .chunks_exact(8)
                .filter(|entry| *entry == id)
                .count(),
            1
        );
    }
}

/// With `AGORA_WORKER_OPS_LISTEN` the worker answers `/health` and `/ready`, and `/metrics`
/// counts what it relayed.
#[tokio::test]
async fn the_worker_serves_its_metrics_when_asked() {
    let database = TestDatabase::create("social", agora_social::migrations).await;
    let ops = format!("127.0.0.1:{}", common::free_port());
    let mut child = Running(
        Command::new(env!("CARGO_BIN_EXE_agora"))
            .arg("worker")
            .env("AGORA_DATABASE_URL", &database.url)
            .env("AGORA_REDIS_URL", redis_url())
            .env("AGORA_AMQP_URL", amqp_url())
            .env("AGORA_AMQP_QUEUE_EXPIRES_SECS", "60")
            .env(
                "AGORA_NAMESPACE",
                format!("workerops{}", std::process::id()),
            )
            .env("AGORA_WORKER_OPS_LISTEN", &ops)
            .env("AGORA_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("starting agora worker"),
    );
    let (sql, connection) = tokio_postgres::connect(&database.url, NoTls).await.unwrap();
    tokio::spawn(connection);
    let author = insert_author(&sql).await;
    post(&sql, author).await;

    let url = |path: &str| format!("http://{ops}{path}");
    let started = Instant::now();
    loop {
        let metrics = match reqwest::get(url("/metrics")).await {
            Ok(response) => response.text().await.unwrap(),
            Err(_) => String::new(),
        };
        let published = metrics
            .lines()
            .filter(|line| line.starts_with("outbox_published_total"))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>();
        if published >= 1.0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the worker's /metrics never counted the post it relayed:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(reqwest::get(url("/health")).await.unwrap().status(), 200);
    assert_eq!(reqwest::get(url("/ready")).await.unwrap().status(), 200);
    child.kill();
}
