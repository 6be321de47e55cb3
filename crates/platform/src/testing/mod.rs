//! Isolated databases for integration tests.
//!
//! Every test gets its own database cloned from a template that holds the service's migrations.
//! The template is built once per migration set (its name carries their checksums) and reused
//! by later runs, so a test pays only for `CREATE DATABASE ... TEMPLATE`, a file copy.

pub mod formation;
pub mod proxy;

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU32, Ordering};

use tokio_postgres::{Client, NoTls};

/// Where the admin connection of the test stack is; `./dev test` sets it.
pub const ADMIN_URL_VAR: &str = "AGORA_TEST_DATABASE_URL";

/// The test stack's shard servers' maintenance databases; `./dev test` sets it.
pub const SHARD_URLS_VAR: &str = "AGORA_TEST_SHARD_URLS";

/// The maintenance database of each shard server of the test stack (at least three).
pub fn shard_admin_urls() -> Vec<String> {
    std::env::var(SHARD_URLS_VAR)
        .unwrap_or_else(|_| panic!("{SHARD_URLS_VAR} is not set: dialogs tests need the test stack's shard servers; run them with ./dev test"))
        .split(',')
        .map(str::to_owned)
        .collect()
}

pub struct TestDatabase {
    pub url: String,
    name: String,
    admin_url: String,
}

async fn admin_client(admin_url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(admin_url, NoTls)
        .await
        .unwrap_or_else(|error| panic!("cannot reach the test PostgreSQL at {admin_url}: {error}; is the test stack up (./dev test)?"));
    tokio::spawn(connection);
    client
}

/// `url` with its database name replaced.
pub fn url_with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{database}?{query}"),
        None => format!("{base}/{database}"),
    }
}

impl TestDatabase {
    /// A fresh database with `service`'s migrations applied.
    pub async fn create(service: &str, migrations: impl Fn() -> refinery::Runner) -> Self {
        let admin_url = std::env::var(ADMIN_URL_VAR)
            .unwrap_or_else(|_| panic!("{ADMIN_URL_VAR} is not set: integration tests need the test stack; run them with ./dev test"));
        Self::create_on(&admin_url, service, migrations).await
    }

    /// A fresh database on another server of the test stack (a dialogs shard server, see
    /// [`shard_admin_urls`]), reached through its maintenance database `admin_url`.
    pub async fn create_on(
        admin_url: &str,
        service: &str,
        migrations: impl Fn() -> refinery::Runner,
    ) -> Self {
        let admin_url = admin_url.to_owned();
        let template = ensure_template(&admin_url, service, &migrations).await;
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "test_{service}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let admin = admin_client(&admin_url).await;
        // Separate statements: a multi-statement string runs as one transaction, which
        // CREATE/DROP DATABASE refuse.
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .await
            .expect("dropping a stale test database");
        admin
            .batch_execute(&format!(
                "CREATE DATABASE \"{name}\" TEMPLATE \"{template}\""
            ))
            .await
            .expect("creating a test database from the template");
        Self {
            url: url_with_database(&admin_url, &name),
            name,
            admin_url,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

async fn ensure_template(
    admin_url: &str,
    service: &str,
    migrations: &impl Fn() -> refinery::Runner,
) -> String {
    let mut hasher = DefaultHasher::new();
    for migration in migrations().get_migrations() {
        migration.to_string().hash(&mut hasher);
        migration.checksum().hash(&mut hasher);
    }
    let fingerprint = hasher.finish();
    let template = format!("template_{service}_{fingerprint:016x}");
    let admin = admin_client(admin_url).await;
    // Parallel tests (and test binaries) race to build the same template; one builds, the rest wait.
    admin
        .execute("SELECT pg_advisory_lock($1)", &[&(fingerprint as i64)])
        .await
        .expect("taking the template lock");
    let exists = admin
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&template])
        .await
        .expect("looking up the template")
        .is_some();
    static SWEPT: std::sync::Once = std::sync::Once::new();
    let mut sweep = false;
    SWEPT.call_once(|| sweep = true);
    if sweep {
        sweep_orphans(&admin, service).await;
    }
    if !exists {
        // Built under a scratch name and renamed when complete, so a crash never leaves a
        // half-migrated template behind under the real name.
        let scratch = format!("{template}_building");
        admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS \"{scratch}\" WITH (FORCE)"
            ))
            .await
            .expect("dropping a half-built template");
        admin
            .batch_execute(&format!("CREATE DATABASE \"{scratch}\""))
            .await
            .expect("creating the template database");
        crate::db::run_migrations(&url_with_database(admin_url, &scratch), migrations())
            .await
            .expect("migrating the template database");
        admin
            .batch_execute(&format!(
                "ALTER DATABASE \"{scratch}\" RENAME TO \"{template}\""
            ))
            .await
            .expect("publishing the template database");
    }
    let _ = admin
        .execute("SELECT pg_advisory_unlock($1)", &[&(fingerprint as i64)])
        .await;
    template
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop cannot await; a short-lived thread with its own runtime removes the database so
        // repeated runs do not pile databases up in the test cluster. It is not joined: the
        // test's runtime is blocked here, and a connection it had half opened would hold the
        // DROP for PostgreSQL's whole authentication_timeout (60 s). Databases whose process
        // exited before its drop finished are swept by the next run (`sweep_orphans`).
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                if let Ok((client, connection)) = tokio_postgres::connect(&admin_url, NoTls).await {
                    tokio::spawn(connection);
                    let _ = client
                        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                        .await;
                }
            });
        });
    }
}

/// Drops test databases left by test processes that no longer run.
async fn sweep_orphans(admin: &tokio_postgres::Client, service: &str) {
    let prefix = format!("test_{service}_");
    let Ok(rows) = admin
        .query(
            "SELECT datname FROM pg_database WHERE starts_with(datname, $1)",
            &[&prefix],
        )
        .await
    else {
        return;
    };
    for row in rows {
        let name: String = row.get(0);
        let pid = name[prefix.len()..].split('_').next().unwrap_or_default();
        let alive = pid.parse::<u32>().is_ok_and(|pid| {
            pid == std::process::id() || std::path::Path::new(&format!("/proc/{pid}")).exists()
        });
        if !alive {
            let _ = admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .await;
        }
    }
}

/// Deletes the keys matching `pattern` from the Redis at `url`, as a flush of one test's
/// keys would (tests share the Redis).
pub async fn delete_redis_keys(url: &str, pattern: &str) {
    let client = redis::Client::open(url).expect("a valid Redis URL");
    let mut redis = client
        .get_multiplexed_async_connection()
        .await
        .expect("the test Redis answers");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(pattern)
        .query_async(&mut redis)
        .await
        .expect("KEYS");
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL")
            .arg(keys)
            .query_async(&mut redis)
            .await
            .expect("DEL");
    }
}

/// Serves `services` as `agora serve` would, on a free loopback port, until the returned sender
/// is dropped or sent to: a service alone in its process, for its tests.
pub async fn serve(
    services: Vec<crate::service::Service>,
) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let http = crate::config::HttpConfig::for_listen(address);
    tokio::spawn(async move {
        crate::service::run(services, listener, &http, async move {
            let _ = stopped.await;
        })
        .await
    });
    (address, stop)
}

/// Polls `check` every 50 ms until it returns Some, for up to 15 s; panics naming `what`.
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

/// A user row in the main database at `main_url`, and a session token for it: (id, token),
/// for tests of a service that checks the social network's tokens.
pub async fn user_with_session(
    main_url: &str,
    sessions: &crate::session::Sessions,
    first_name: &str,
) -> (String, String) {
    let pool = crate::db::connect_pool(
        &crate::config::DatabaseConfig::for_url(main_url),
        "test-users",
    )
    .unwrap();
    let user = crate::identity::Directory::new(pool)
        .insert_user(first_name, "Tester")
        .await
        .unwrap();
    let token = sessions
        .open(user, std::time::Duration::from_secs(3600), 100)
        .await
        .unwrap();
    (user.0.to_string(), token)
}

/// One request to a service under test at `address`, with an optional bearer token, JSON body
/// and extra headers: the status, the body (Null when empty, a string when it is not JSON) and
/// the headers.
pub async fn call_json(
    client: &reqwest::Client,
    address: std::net::SocketAddr,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
    headers: &[(&str, &str)],
) -> (
    reqwest::StatusCode,
    serde_json::Value,
    reqwest::header::HeaderMap,
) {
    let mut request = client.request(method, format!("http://{address}{path}"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
    };
    (status, body, headers)
}

/// The test stack's Redis (`./dev env test`), shared by all tests: each test gets a namespace.
pub fn redis_url() -> String {
    std::env::var("AGORA_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:63800".into())
}

/// host:port of a `postgres://` URL.
pub fn server_of(url: &str) -> std::net::SocketAddr {
    let config: tokio_postgres::Config = url.parse().unwrap();
    let host = match &config.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(host) => host.clone(),
        #[allow(unreachable_patterns)]
        _ => "127.0.0.1".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}").parse().unwrap()
}

/// `url` pointed at `address` instead of its server (a [`proxy::ChaosProxy`] in front of it).
pub fn url_through(url: &str, address: std::net::SocketAddr) -> String {
    url.replacen(&server_of(url).to_string(), &address.to_string(), 1)
}

/// What a service under test shares with its deployment, as `agora serve` builds it: the main
/// database (short timeouts, so an outage fails fast), the test stack's Redis, default session
/// settings, and a namespace of its own.
pub fn platform_settings(main_url: &str, namespace: &str) -> crate::settings::PlatformSettings {
    let mut settings = crate::settings::PlatformSettings::for_urls(main_url, &redis_url());
    settings.database.connect_timeout_ms = 1_000;
    settings.database.wait_timeout_ms = 2_000;
    settings.namespace = namespace.to_owned();
    settings
}

/// A namespace of its own for one service under test: `prefix`, the process and a counter, so
/// concurrent tests and test binaries never share Redis keys or channels.
pub fn unique_namespace(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A service alone in its process, as `agora serve --services <it>` runs it, for its tests:
/// served on a free loopback port, with the main database's sessions to give test users tokens
/// it accepts. Stops when dropped.
pub struct ServiceUnderTest {
    pub address: std::net::SocketAddr,
    pub main: TestDatabase,
    pub settings: crate::settings::PlatformSettings,
    pub sessions: crate::session::Sessions,
    pub client: reqwest::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl ServiceUnderTest {
    /// Serves `service`, built from `settings` on the main database `main`.
    pub async fn serve(
        main: TestDatabase,
        settings: crate::settings::PlatformSettings,
        service: crate::service::Service,
        application: &str,
    ) -> Self {
        let (address, stop) = serve(vec![service]).await;
        let sessions = sessions(&settings, application);
        Self {
            address,
            main,
            settings,
            sessions,
            client: reqwest::Client::new(),
            _stop: stop,
        }
    }

    /// A new user and a session token for it: (id, token).
    pub async fn user(&self, first_name: &str) -> (String, String) {
        user_with_session(&self.main.url, &self.sessions, first_name).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.address, path)
    }

    /// [`call_json`] to this service.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
        headers: &[(&str, &str)],
    ) -> (
        reqwest::StatusCode,
        serde_json::Value,
        reqwest::header::HeaderMap,
    ) {
        call_json(
            &self.client,
            self.address,
            method,
            path,
            token,
            body,
            headers,
        )
        .await
    }
}

/// Sessions on the main database, to give test users tokens the service accepts.
pub fn sessions(
    settings: &crate::settings::PlatformSettings,
    application: &str,
) -> crate::session::Sessions {
    settings
        .sessions(crate::db::connect_pool(&settings.database, application).unwrap())
        .unwrap()
}

#[cfg(test)]
mod tests {
    use super::url_with_database;

    #[test]
    fn replaces_the_database_name() {
        assert_eq!(
            url_with_database("postgres://a:b@h:1/postgres", "x"),
            "postgres://a:b@h:1/x"
        );
        assert_eq!(
            url_with_database("postgres://a:b@h:1/postgres?sslmode=disable", "x"),
            "postgres://a:b@h:1/x?sslmode=disable"
        );
        assert_eq!(url_with_database("postgres://h:1", "x"), "postgres://h:1/x");
    }
}
