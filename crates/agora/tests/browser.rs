//! The web front end in a real browser: Debian's Chromium, headless, driven through
//! chromedriver, against `agora serve` and `agora worker` on the test stack. Two people, each
//! in a browser of their own, sign up, find and befriend each other, post, see posts arrive
//! live, edit, delete, unfriend and write messages; forms reject bad input and forged
//! requests; a database outage shows a page that recovers by itself.
//!
//! Screenshots of the main pages go to `$AGORA_SCREENSHOTS` (docs/ui/ when `./dev screenshots`
//! runs it), or to this test's temporary directory.

mod common;

use common::{amqp_url, env_or, free_port, redis_url};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use agora_dialogs::config::{DialogsConfig, ShardServer};
use agora_platform::testing::proxy::ChaosProxy;
use agora_platform::testing::{TestDatabase, server_of, shard_admin_urls, url_through};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

/// A child process killed when dropped, so a failing test leaves nothing running.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `agora serve` (social, dialogs, web) and `agora worker` of one deployment.
struct Platform {
    address: SocketAddr,
    ops: SocketAddr,
    env: Vec<(String, String)>,
    server: Option<Process>,
    _worker: Process,
}

impl Platform {
    async fn start(database_url: &str, worker_database_url: &str) -> Self {
        let address: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let ops: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let namespace = format!("webtest{}-{}", std::process::id(), address.port());
        let common = vec![
            ("AGORA_REDIS_URL".to_owned(), redis_url()),
            ("AGORA_AMQP_URL".to_owned(), amqp_url()),
            ("AGORA_AMQP_QUEUE_EXPIRES_SECS".to_owned(), "60".to_owned()),
            ("AGORA_NAMESPACE".to_owned(), namespace),
            ("AGORA_LOG".to_owned(), "warn".to_owned()),
        ];
        let worker = Command::new(env!("CARGO_BIN_EXE_agora"))
            .arg("worker")
            .envs(common.iter().map(|(k, v)| (k, v)))
            .env("AGORA_DATABASE_URL", worker_database_url)
            .stdout(Stdio::null())
            .spawn()
            .expect("starting agora worker");
        let mut env = common;
        env.extend([
            ("AGORA_DATABASE_URL".to_owned(), database_url.to_owned()),
            ("AGORA_SERVICES".to_owned(), "social,dialogs,web".to_owned()),
            ("AGORA_LISTEN".to_owned(), address.to_string()),
            ("AGORA_OPS_LISTEN".to_owned(), ops.to_string()),
            // Fail fast while the database is cut off (the outage step).
            ("AGORA_DB_WAIT_TIMEOUT_MS".to_owned(), "1000".to_owned()),
            ("AGORA_DB_CONNECT_TIMEOUT_MS".to_owned(), "1000".to_owned()),
        ]);
        let mut platform = Self {
            address,
            ops,
            env,
            server: None,
            _worker: Process(worker),
        };
        platform.start_server().await;
        platform
    }

    async fn start_server(&mut self) {
        let child = Command::new(env!("CARGO_BIN_EXE_agora"))
            .arg("serve")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .spawn()
            .expect("starting agora serve");
        self.server = Some(Process(child));
        let deadline = Instant::now() + Duration::from_secs(30);
        let ready = format!("http://{}/health", self.address);
        while reqwest::get(&ready).await.is_err() {
            assert!(Instant::now() < deadline, "agora serve did not answer");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, as a deployment restarts a server: live sockets are closed with 1012.
    fn stop_server(&mut self) {
        if let Some(mut process) = self.server.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &process.0.id().to_string()])
                .status();
            let _ = process.0.wait();
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }
}

/// chromedriver on a free port; one Chromium per [`Browser`].
struct Driver {
    url: String,
    _process: Process,
}

impl Driver {
    async fn start() -> Self {
        let binary = env_or("AGORA_CHROMEDRIVER", "chromedriver");
        let port = free_port();
        let child = Command::new(&binary)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!("cannot start {binary} ({error}): the browser tests need Debian's chromium and chromium-driver; ./dev test installs them")
            });
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while reqwest::get(format!("{url}/status")).await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not answer");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self {
            url,
            _process: Process(child),
        }
    }

    async fn browser(&self, base: String, width: u32, height: u32) -> Browser {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": env_or("AGORA_CHROMIUM", "/usr/bin/chromium"),
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", format!("--window-size={width},{height}")],
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("starting a Chromium session");
        Browser { client, base }
    }
}

struct Browser {
    client: Client,
    base: String,
}

const WAIT: Duration = Duration::from_secs(20);

impl Browser {
    async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap();
    }

    async fn path(&self) -> String {
        let url = self.client.current_url().await.unwrap();
        match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        }
    }

    async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|error| panic!("no {css} on the page: {error}"))
    }

    async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.unwrap()
    }

    async fn fill(&self, css: &str, value: &str) {
        let field = self.find(css).await;
        field.clear().await.unwrap();
        field.send_keys(value).await.unwrap();
    }

    /// Clicks something that loads another page, and waits until the new page is there.
    async fn click(&self, css: &str) {
        let target = self.find(css).await;
        self.navigate_by(target).await;
    }

    async fn navigate_by(&self, target: fantoccini::elements::Element) {
        let old_page = self.find("html").await;
        target.click().await.unwrap();
        let deadline = Instant::now() + WAIT;
        // The old document's root goes stale once the browser has replaced it.
        while old_page.tag_name().await.is_ok() {
            assert!(Instant::now() < deadline, "the page did not change");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.find("body").await;
    }

    /// Clicks the submit button of the form `css` names.
    async fn submit(&self, css: &str) {
        self.click(&format!("{css} button[type=submit]")).await;
    }

    async fn body(&self) -> String {
        self.text("body").await
    }

    /// Waits until the page's text contains `needle` (without reloading).
    async fn wait_for_text(&self, needle: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let body = self.body().await;
            if body.contains(needle) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{needle:?} never appeared on {}; the page says:\n{body}",
                self.path().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Reloads until the page contains (or no longer contains) `needle`: feeds follow writes
    /// through the queue, a moment later.
    async fn reload_until(&self, needle: &str, present: bool) {
        let deadline = Instant::now() + WAIT;
        loop {
            let body = self.body().await;
            if body.contains(needle) == present {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{needle:?} {} on {}; the page says:\n{body}",
                if present {
                    "never appeared"
                } else {
                    "never went away"
                },
                self.path().await
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
            self.client.refresh().await.unwrap();
        }
    }

    async fn count(&self, css: &str) -> usize {
        self.client.find_all(Locator::Css(css)).await.unwrap().len()
    }

    /// Every field a person fills in has a label (screen readers read it; clicking it focuses
    /// the field).
    async fn assert_labelled(&self) {
        let unlabelled = self
            .client
            .execute(
                "return [...document.querySelectorAll('input:not([type=hidden]), textarea')] \
                   .filter(field => field.labels.length === 0) \
                   .map(field => field.name || field.id);",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(
            unlabelled,
            json!([]),
            "fields without a label on {}",
            self.path().await
        );
    }

    async fn screenshot(&self, name: &str) {
        self.assert_labelled().await;
        let png = self.client.screenshot().await.unwrap();
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    async fn sign_up(&self, first: &str, last: &str, city: &str) -> i64 {
        self.goto("/signup").await;
        self.fill("#first_name", first).await;
        self.fill("#second_name", last).await;
        self.fill("#city", city).await;
        self.fill("#biography", "Here to see how a social network scales.")
            .await;
        self.fill("#password", PASSWORD).await;
        self.submit("form[action='/signup']").await;
        self.text("#my-id").await.parse().unwrap()
    }

    async fn sign_in(&self, id: i64, password: &str) {
        self.goto("/signin").await;
        self.fill("#id", &id.to_string()).await;
        self.fill("#password", password).await;
        self.submit("form[action='/signin']").await;
    }

    async fn post(&self, text: &str) {
        self.goto("/").await;
        self.fill("#text", text).await;
        self.submit("form.composer").await;
        self.find("#posted").await;
    }
}

fn screenshot_dir() -> PathBuf {
    std::env::var_os("AGORA_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots"))
}

const PASSWORD: &str = "correct horse battery";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_people_use_the_social_network_in_a_browser() {
    let main = TestDatabase::create("social", agora_social::migrations).await;
    let shard = TestDatabase::create_on(
        &shard_admin_urls()[0],
        "dialogs_shard",
        agora_dialogs::shard_migrations,
    )
    .await;
    let dialogs = DialogsConfig {
        logical_shards: 4,
        ..DialogsConfig::for_shards(vec![ShardServer {
            name: "shard1".into(),
            url: shard.url.clone(),
        }])
    };
    agora_dialogs::migrate(&dialogs, &main.url).await.unwrap();
    // The server reaches its main database through a proxy the test can cut.
    let proxy = ChaosProxy::start(server_of(&main.url)).await;
    let mut platform = Platform::start(&url_through(&main.url, proxy.address), &main.url).await;
    let driver = Driver::start().await;
    let run = std::process::id();
    let (alice_first, bob_first) = (format!("Alice{run}"), format!("Bob{run}"));

    // Every page says what it may load and that it may not be framed.
    let page = reqwest::get(platform.url("/signin")).await.unwrap();
    let header = |name: &str| {
        page.headers()
            .get(name)
            .map(|value| value.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    assert!(header("content-security-policy").contains("script-src 'self'"));
    assert!(!header("content-security-policy").contains("unsafe-inline"));
    assert!(header("content-security-policy").contains("frame-ancestors 'none'"));
    assert_eq!(header("x-frame-options"), "DENY");
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert_eq!(header("referrer-policy"), "same-origin");
    assert!(header("set-cookie").contains("HttpOnly; SameSite=Lax"));
    // Behind a proxy that terminated HTTPS, cookies are Secure and named __Host- (no other
    // host can plant one).
    let over_https = reqwest::Client::new()
        .get(platform.url("/signin"))
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap();
    let cookie = over_https.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("__Host-agora_csrf="), "{cookie}");
    assert!(cookie.ends_with("; Secure"), "{cookie}");

    // No session: pages that need one send the visitor to sign in.
    let alice = driver.browser(platform.url(""), 1200, 900).await;
    alice.goto("/").await;
    assert_eq!(alice.path().await, "/signin");
    alice.goto("/messages").await;
    assert_eq!(alice.path().await, "/signin?next=%2Fmessages");

    // Sign-up errors are shown next to their field, and what was typed is kept.
    alice.goto("/signup").await;
    alice.fill("#second_name", "Liddell").await;
    alice.fill("#city", "Oxford").await;
    alice.fill("#password", "short").await;
    alice.submit("form[action='/signup']").await;
    assert_eq!(
        alice.text("#first_name-error").await,
        "First name must not be empty."
    );
    assert_eq!(
        alice
            .find("#second_name")
            .await
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some("Liddell")
    );
    assert_eq!(
        alice
            .find("#first_name")
            .await
            .attr("aria-invalid")
            .await
            .unwrap()
            .as_deref(),
        Some("true")
    );
    alice.screenshot("signup-errors").await;

    // Sign up, land on home, post, sign out, a wrong password, sign in.
    let alice_id = alice.sign_up(&alice_first, "Liddell", "Oxford").await;
    assert_eq!(alice.path().await, "/");
    assert!(
        alice
            .body()
            .await
            .contains(&format!("{alice_first} Liddell"))
    );
    alice.post("Down the rabbit hole").await;
    let session = alice
        .client
        .get_named_cookie("agora_session")
        .await
        .unwrap()
        .value()
        .to_owned();
    let api = reqwest::Client::new();
    let feed_as = |token: String| {
        api.get(platform.url("/post/feed"))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(feed_as(session.clone()).await.unwrap().status(), 200);
    alice.click("form[action='/signout'] button").await;
    // Signing out revoked the session itself, not only the browser's cookie.
    assert_eq!(feed_as(session).await.unwrap().status(), 401);
    assert_eq!(alice.path().await, "/signin");
    alice.goto("/").await;
    assert_eq!(alice.path().await, "/signin", "signed out means signed out");
    alice.sign_in(alice_id, "not my password").await;
    assert_eq!(alice.text("#signin-error").await, "Wrong id or password.");
    alice.screenshot("signin-error").await;
    alice.sign_in(alice_id, PASSWORD).await;
    assert_eq!(alice.path().await, "/", "{}", alice.body().await);

    // A second person finds the first by name prefixes and befriends her.
    let bob = driver.browser(platform.url(""), 1200, 900).await;
    let bob_id = bob.sign_up(&bob_first, "Builder", "Bristol").await;
    bob.goto("/people").await;
    bob.fill("#first_name", &alice_first[..alice_first.len() - 2])
        .await;
    bob.fill("#last_name", "Lid").await;
    bob.submit("form.search").await;
    bob.find("#results").await;
    bob.screenshot("search").await;
    bob.click(&format!("#results a[href='/people/{alice_id}']"))
        .await;
    assert_eq!(bob.path().await, format!("/people/{alice_id}"));
    assert!(bob.body().await.contains("Down the rabbit hole"));
    bob.click("#befriend").await;
    bob.find("#unfriend").await;
    bob.screenshot("user").await;
    bob.goto("/").await;
    bob.reload_until("Down the rabbit hole", true).await;

    // Bob's open home page shows Alice's new post live, without a reload.
    bob.find("#feed[data-connected='true']").await;
    alice.post("Curiouser and curiouser").await;
    bob.wait_for_text("Curiouser and curiouser").await;
    bob.screenshot("home-live").await;

    // The server restarts while Bob's page is open; a post made meanwhile (straight into the
    // database, as the server is down) is shown once he is reconnected, and nothing twice.
    platform.stop_server();
    bob.find("#feed[data-connected='false']").await;
    let sql = connect(&main.url).await;
    let missed: i64 = sql
        .query_one(
            "WITH p AS (INSERT INTO posts (author_id, text) VALUES ($1, 'Written while you were away') RETURNING id), \
                  o AS (INSERT INTO feed_outbox (kind, actor_id, subject_id) SELECT 'post_created', $1, id FROM p) \
             SELECT id FROM p",
            &[&alice_id],
        )
        .await
        .unwrap()
        .get(0);
    sql.execute("SELECT pg_notify('feed_outbox', '')", &[])
        .await
        .unwrap();
    platform.start_server().await;
    bob.wait_for_text("Written while you were away").await;
    bob.find("#feed[data-connected='true']").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(bob.count(&format!("#post-{missed}")).await, 1);
    let live_ids: Vec<String> = feed_ids(&bob).await;
    let mut unique = live_ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        live_ids.len(),
        unique.len(),
        "a post shown twice: {live_ids:?}"
    );

    // Alice edits one post and deletes another; Bob's feed follows.
    alice.goto("/").await;
    alice.goto(&format!("/people/{alice_id}")).await;
    alice
        .click("#posts li:first-child a[href^='/posts/']")
        .await;
    let curious = alice.path().await;
    assert!(
        alice
            .text("#post-text")
            .await
            .contains("Written while you were away")
    );
    alice.goto(&format!("/people/{alice_id}")).await;
    let rabbit_link = alice
        .client
        .find(Locator::XPath(
            "//li[contains(., 'Down the rabbit hole')]//a[starts-with(@href, '/posts/')]",
        ))
        .await
        .unwrap();
    alice.navigate_by(rabbit_link).await;
    alice.fill("#text", "Down the rabbit hole, edited").await;
    alice.click("#save").await;
    assert!(alice.body().await.contains("Saved."));
    alice.screenshot("post").await;
    alice.goto(&curious).await;
    alice.click("#delete").await;
    assert!(alice.body().await.contains("Your post was deleted."));
    bob.goto("/").await;
    bob.reload_until("Down the rabbit hole, edited", true).await;
    bob.reload_until("Written while you were away", false).await;

    // A form without its CSRF token is refused.
    bob.goto("/").await;
    bob.client
        .execute(
            "document.querySelector('form.composer input[name=csrf]').remove();",
            vec![],
        )
        .await
        .unwrap();
    bob.fill("#text", "This should never be posted").await;
    bob.submit("form.composer").await;
    assert!(bob.text("h1").await.contains("Not allowed"));
    assert!(
        bob.body()
            .await
            .contains("this form has expired or did not come from this site")
    );
    bob.goto(&format!("/people/{alice_id}")).await;
    assert!(!bob.body().await.contains("This should never be posted"));

    // Messages.
    bob.click(&format!("a[href='/messages/{alice_id}']")).await;
    bob.fill("#text", "Tea at four?").await;
    bob.submit(&format!("form[action='/messages/{alice_id}']"))
        .await;
    bob.find("#messages li.mine").await;
    assert!(bob.text("#messages").await.contains("Tea at four?"));
    bob.screenshot("dialog").await;
    alice.goto("/messages").await;
    assert!(alice.body().await.contains("Tea at four?"));
    assert!(alice.body().await.contains(&format!("{bob_first} Builder")));
    alice.screenshot("messages").await;

    // Unfriending removes her posts from his feed.
    bob.goto(&format!("/people/{alice_id}")).await;
    bob.click("#unfriend").await;
    bob.find("#befriend").await;
    bob.goto("/").await;
    bob.reload_until("Curiouser and curiouser", false).await;
    bob.screenshot("home").await;

    // Pages that do not exist are pages, not JSON.
    bob.goto("/no/such/page").await;
    assert_eq!(bob.text("h1").await, "Page not found");
    bob.screenshot("not-found").await;

    // The database goes away: a page that says so and retries; back when the database is.
    proxy.cut();
    bob.goto(&format!("/people/{bob_id}")).await;
    assert_eq!(bob.text("h1").await, "We will be right back");
    bob.screenshot("unavailable").await;
    proxy.restore();
    let deadline = Instant::now() + WAIT;
    while bob.text("h1").await != format!("{bob_first} Builder") {
        assert!(Instant::now() < deadline, "the page did not recover");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // The home page on a phone.
    let phone = driver.browser(platform.url(""), 390, 844).await;
    phone.sign_in(alice_id, PASSWORD).await;
    phone.find("#my-id").await;
    phone.screenshot("home-phone").await;

    for browser in [alice, bob, phone] {
        let _ = browser.client.close().await;
    }
    let _ = platform.ops;
}

/// Post ids on the page's feed, in order.
async fn feed_ids(browser: &Browser) -> Vec<String> {
    let mut ids = Vec::new();
    for item in browser
        .client
        .find_all(Locator::Css("#feed li.post"))
        .await
        .unwrap()
    {
        ids.push(item.attr("data-post-id").await.unwrap().unwrap_or_default());
    }
    ids
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}
