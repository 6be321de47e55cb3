//! Starts the real server on port 0 against its own database cloned from a migrated template.

#![allow(dead_code)] // each test binary uses a different subset

pub use agora_platform::testing::{eventually, proxy, redis_url};

use std::net::SocketAddr;

use agora_platform::amqp::AmqpConfig;
use agora_platform::config::HttpConfig;
use agora_platform::settings::PlatformSettings;
use agora_platform::testing::TestDatabase;
use agora_social::SocialConfig;
use agora_social::feed::FeedConfig;
use agora_social::feed::worker::WorkerConfig;
use agora_social::live::LiveConfig;
use reqwest::{Client, Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_postgres::NoTls;

pub const PASSWORD: &str = "correct horse battery";

/// Everything a test server runs with: the settings every service shares, the HTTP server's,
/// and the social network's own.
#[derive(Debug, Clone)]
pub struct AppConfig {
    pub platform: PlatformSettings,
    pub http: HttpConfig,
    pub social: SocialConfig,
}

pub struct TestApp {
    pub address: SocketAddr,
    pub config: AppConfig,
    /// Stops the feed worker, when one was started.
    worker: Option<oneshot::Sender<()>>,
    pub client: Client,
    pub database: TestDatabase,
    stop: Option<oneshot::Sender<()>>,
}

pub fn config_for(database_url: &str) -> AppConfig {
    AppConfig {
        platform: agora_platform::testing::platform_settings(database_url, &unique_namespace()),
        http: HttpConfig::for_listen("127.0.0.1:0".parse().unwrap()),
        social: social_config(),
    }
}

fn social_config() -> SocialConfig {
    SocialConfig {
        feed: FeedConfig::defaults(),
        live: LiveConfig {
            amqp: test_amqp_config(&amqp_url()),
            ..LiveConfig::for_amqp(amqp_url())
        },
        max_sessions_per_user: 100,
        search_order: agora_social::config::SearchOrder::Name,
        token_ttl_secs: 3600,
        password_hash_concurrency: 2,
        password_hash_queue: 256,
    }
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

    /// On a fresh database, with the default test configuration changed by `configure`.
    pub async fn spawn_configured(configure: impl FnOnce(&mut AppConfig)) -> Self {
        let database = TestDatabase::create("social", agora_social::migrations).await;
        let mut config = config_for(&database.url);
        configure(&mut config);
        Self::spawn_with(database, config).await
    }

    /// Serves with `config` (its database URL may point elsewhere, e.g. through a proxy).
    pub async fn spawn_with(database: TestDatabase, config: AppConfig) -> Self {
        init_tracing();
        let mut instance = Instance::start(config.clone()).await;
        Self {
            address: instance.address,
            config,
            worker: None,
            client: Client::new(),
            database,
            stop: instance.stop.take(),
        }
    }

    /// Another server instance of the same deployment (database, Redis namespace, broker).
    pub async fn spawn_instance(&self) -> Instance {
        let mut config = self.config.clone();
        config.social.live.instance_id = String::new();
        Instance::start(config).await
    }

    /// A live feed socket on this app's first instance.
    pub async fn live(&self, token: &str, since: Option<&str>) -> LiveSocket {
        live_connect(self.address, token, since).await
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
        redis::Client::open(self.config.platform.redis.url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    /// Every cached feed of this app, as stored (flag byte, then 8-byte ids).
    pub async fn raw_feeds(&self) -> Vec<Vec<u8>> {
        let mut redis = self.redis().await;
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}feed:*", self.config.platform.key_prefix()))
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
        let pattern = format!("{}*", self.config.platform.key_prefix());
        agora_platform::testing::delete_redis_keys(&redis_url(), &pattern).await;
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
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:62672/%2f".into())
}

pub fn test_amqp_config(amqp_url: &str) -> AmqpConfig {
    AmqpConfig {
        // Queues of finished tests vanish from the shared broker by themselves.
        queue_expires_secs: 300,
        ..AmqpConfig::for_url(amqp_url)
    }
}

/// A worker config for `app`: same database, Redis namespace and queues.
pub fn worker_config_for(app: &TestApp, amqp_url: &str) -> WorkerConfig {
    WorkerConfig {
        platform: app.config.platform.clone(),
        feed: app.config.social.feed.clone(),
        amqp: test_amqp_config(amqp_url),
        relay_batch: 200,
        // Far beyond any test's patience: posts must arrive because NOTIFY woke the relay.
        relay_poll_ms: 600_000,
        prefetch: 16,
        ops_listen: None,
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

/// Logs of the servers and workers under test, when `RUST_LOG` asks for them.
fn init_tracing() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// A server instance without a database of its own; stops when dropped.
pub struct Instance {
    pub address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
}

impl Instance {
    async fn start(config: AppConfig) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(agora_social::http::run(
            config.platform,
            config.http,
            config.social,
            listener,
            async move {
                let _ = stopped.await;
            },
        ));
        Self {
            address,
            stop: Some(stop),
        }
    }

    pub async fn live(&self, token: &str, since: Option<&str>) -> LiveSocket {
        live_connect(self.address, token, since).await
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub type LiveSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The handshake request for `/post/feed/posted`, with a bearer token when given.
pub fn live_request(
    address: SocketAddr,
    token: Option<&str>,
    since: Option<&str>,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let query = since.map(|id| format!("?since={id}")).unwrap_or_default();
    let mut request = format!("ws://{address}/post/feed/posted{query}")
        .into_client_request()
        .unwrap();
    if let Some(token) = token {
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    request
}

/// Opens a live socket. The server records it before completing the handshake, so posts made
/// right after are routed to it.
pub async fn live_connect(address: SocketAddr, token: &str, since: Option<&str>) -> LiveSocket {
    let (socket, response) =
        tokio_tungstenite::connect_async(live_request(address, Some(token), since))
            .await
            .expect("live feed handshake");
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    socket
}

/// The next post message on a live socket as (postId, postText, author_user_id); panics on a
/// close or after 10 s.
pub async fn next_live_post(socket: &mut LiveSocket) -> (String, String, String) {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let deadline = std::time::Duration::from_secs(10);
    loop {
        let frame = tokio::time::timeout(deadline, socket.next())
            .await
            .expect("a live post within 10 s")
            .expect("the socket is open")
            .expect("a valid frame");
        match frame {
            Message::Text(text) => {
                let body: Value = serde_json::from_str(&text).unwrap();
                return (
                    body["postId"].as_str().unwrap().to_owned(),
                    body["postText"].as_str().unwrap().to_owned(),
                    body["author_user_id"].as_str().unwrap().to_owned(),
                );
            }
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected a post, got {other:?}"),
        }
    }
}

/// Asserts no post arrives on the socket for `millis`.
pub async fn assert_no_live_post(socket: &mut LiveSocket, millis: u64) {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let until = tokio::time::Instant::now() + std::time::Duration::from_millis(millis);
    loop {
        match tokio::time::timeout_at(until, socket.next()).await {
            Err(_) => return,
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(other) => panic!("expected silence, got {other:?}"),
        }
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
