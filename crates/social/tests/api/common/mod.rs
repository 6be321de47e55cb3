//! Starts the real server on port 0 against its own database cloned from a migrated template.

#![allow(dead_code)] // each test binary uses a different subset

pub mod proxy;

use std::net::SocketAddr;

use agora_platform::amqp::AmqpConfig;
use agora_platform::config::{DatabaseConfig, HttpConfig};
use agora_platform::testing::TestDatabase;
use agora_social::SocialConfig;
use agora_social::feed::FeedConfig;
use agora_social::feed::worker::WorkerConfig;
use reqwest::{Client, Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_postgres::NoTls;

pub const PASSWORD: &str = "correct horse battery";

pub struct TestApp {
    pub address: SocketAddr,
    pub config: SocialConfig,
    /// Stops the feed worker, when one was started.
    worker: Option<oneshot::Sender<()>>,
    pub client: Client,
    pub database: TestDatabase,
    stop: Option<oneshot::Sender<()>>,
}

pub fn config_for(database_url: &str) -> SocialConfig {
    SocialConfig {
        database: DatabaseConfig {
            connect_timeout_ms: 1_000,
            wait_timeout_ms: 2_000,
            ..DatabaseConfig::for_url(database_url)
        },
        http: HttpConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            max_body_bytes: 64 * 1024,
            shutdown_grace_secs: 1,
        },
        feed: FeedConfig {
            namespace: unique_namespace(),
            ..FeedConfig::for_redis(redis_url())
        },
        token_ttl_secs: 3600,
        password_hash_concurrency: 2,
        password_hash_queue: 256,
    }
}

/// The test stack's Redis (`./dev env test`), shared by all tests: each app gets its own
/// namespace.
pub fn redis_url() -> String {
    std::env::var("AGORA_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:63800".into())
}

pub fn unique_namespace() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "test{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

impl TestApp {
    pub async fn spawn() -> Self {
        let database = TestDatabase::create("social", agora_social::migrations).await;
        let config = config_for(&database.url);
        Self::spawn_with(database, config).await
    }

    /// Serves with `config` (its database URL may point elsewhere, e.g. through a proxy).
    pub async fn spawn_with(database: TestDatabase, config: SocialConfig) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(agora_social::http::run(
            config.clone(),
            listener,
            async move {
                let _ = stopped.await;
            },
        ));
        Self {
            address,
            config,
            worker: None,
            client: Client::new(),
            database,
            stop: Some(stop),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.address, path)
    }

    pub fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let builder = self.client.request(method, self.url(path));
        match token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        self.request(Method::GET, path, token).send().await.unwrap()
    }

    pub async fn post_json(&self, path: &str, body: Value, token: Option<&str>) -> Response {
        self.request(Method::POST, path, token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn put_json(&self, path: &str, body: Value, token: Option<&str>) -> Response {
        self.request(Method::PUT, path, token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn put(&self, path: &str, token: Option<&str>) -> Response {
        self.request(Method::PUT, path, token).send().await.unwrap()
    }

    pub async fn register(&self, first_name: &str, second_name: &str) -> String {
        let response = self
            .post_json(
                "/user/register",
                json!({"first_name": first_name, "second_name": second_name, "password": PASSWORD}),
                None,
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        body["user_id"]
            .as_str()
            .expect("user_id is a string")
            .to_owned()
    }

    pub async fn login(&self, id: &str) -> String {
        let response = self
            .post_json("/login", json!({"id": id, "password": PASSWORD}), None)
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        body["token"]
            .as_str()
            .expect("token is a string")
            .to_owned()
    }

    /// A registered, logged-in user: (id, token).
    pub async fn user(&self, first_name: &str, second_name: &str) -> (String, String) {
        let id = self.register(first_name, second_name).await;
        let token = self.login(&id).await;
        (id, token)
    }

    /// A Redis connection, for arranging and checking the cache.
    pub async fn redis(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.config.feed.redis.url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    /// Every cached feed of this app, as stored (flag byte, then 8-byte ids).
    pub async fn raw_feeds(&self) -> Vec<Vec<u8>> {
        let mut redis = self.redis().await;
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}feed:*", self.config.feed.key_prefix()))
            .query_async(&mut redis)
            .await
            .unwrap();
        let mut feeds = Vec::new();
        for key in keys {
            let feed: Vec<u8> = redis::cmd("GET")
                .arg(key)
                .query_async(&mut redis)
                .await
                .unwrap();
            feeds.push(feed);
        }
        feeds
    }

    /// Deletes every Redis key of this app, as FLUSHALL would (other tests share the Redis).
    pub async fn flush_redis(&self) {
        let mut redis = self.redis().await;
        let pattern = format!("{}*", self.config.feed.key_prefix());
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(pattern)
            .query_async(&mut redis)
            .await
            .unwrap();
        if !keys.is_empty() {
            let _: () = redis::cmd("DEL")
                .arg(keys)
                .query_async(&mut redis)
                .await
                .unwrap();
        }
    }

    /// Creates a post through the API and returns its id.
    pub async fn post(&self, token: &str, text: &str) -> String {
        let response = self
            .post_json("/post/create", json!({"text": text}), Some(token))
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json::<String>().await.unwrap()
    }

    /// A feed page as (post id, text, author id) triples.
    pub async fn feed(
        &self,
        token: &str,
        offset: usize,
        limit: usize,
    ) -> Vec<(String, String, String)> {
        let response = self
            .get(
                &format!("/post/feed?offset={offset}&limit={limit}"),
                Some(token),
            )
            .await;
        let status = response.status();
        if status != StatusCode::OK {
            panic!("feed answered {status}: {}", response.text().await.unwrap());
        }
        let posts: Vec<Value> = response.json().await.unwrap();
        posts
            .iter()
            .map(|p| {
                (
                    p["id"].as_str().unwrap().to_owned(),
                    p["text"].as_str().unwrap().to_owned(),
                    p["author_user_id"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    /// A direct connection to this test's database, for arranging and checking state.
    pub async fn sql(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.database.url, NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
    }
}

/// The test stack's RabbitMQ (`./dev env test`).
pub fn amqp_url() -> String {
    std::env::var("AGORA_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:56730/%2f".into())
}

/// A worker config for `app`: same database, Redis namespace and queues.
pub fn worker_config_for(app: &TestApp, amqp_url: &str) -> WorkerConfig {
    WorkerConfig {
        database: app.config.database.clone(),
        feed: app.config.feed.clone(),
        amqp: AmqpConfig {
            // Queues of finished tests vanish from the shared broker by themselves.
            queue_expires_secs: 300,
            ..AmqpConfig::for_url(amqp_url)
        },
        relay_batch: 200,
        // Far beyond any test's patience: posts must arrive because NOTIFY woke the relay.
        relay_poll_ms: 600_000,
        prefetch: 16,
    }
}

impl TestApp {
    /// The server and a feed worker beside it.
    pub async fn spawn_with_worker() -> Self {
        let mut app = Self::spawn().await;
        let config = worker_config_for(&app, &amqp_url());
        app.start_worker(config);
        app
    }

    pub fn start_worker(&mut self, config: WorkerConfig) {
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(agora_social::feed::worker::run(config, async move {
            let _ = stopped.await;
        }));
        self.worker = Some(stop);
    }
}

/// Polls `check` until it returns Some, for up to 15 s.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.worker.take() {
            let _ = stop.send(());
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Asserts an error response: status, JSON envelope with a message, and the request id.
pub async fn assert_error(response: Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status, "unexpected status");
    let header_id = response
        .headers()
        .get("x-request-id")
        .expect("x-request-id header")
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.expect("error body is JSON");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "message in {body}"
    );
    assert_eq!(body["request_id"].as_str(), Some(header_id.as_str()));
    assert!(body["code"].is_u64(), "numeric code in {body}");
    body
}
