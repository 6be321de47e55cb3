//! The UGC service in-process on fresh databases, and the calls the tests make.

use agora_platform::testing::proxy::ChaosProxy;
use agora_platform::testing::{
    ServiceUnderTest, TestDatabase, server_of, unique_namespace, url_through,
};
use agora_ugc::UgcConfig;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_postgres::NoTls;

pub const FILM: &str = "6f9619ff-8b86-d011-b42d-00c04fc964ff";
pub const OTHER_FILM: &str = "0b8e1c2a-5d3f-4e6a-9b7c-1d2e3f4a5b6c";

pub struct UgcApp {
    pub served: ServiceUnderTest,
    pub ugc: TestDatabase,
    /// Between the service and its database (not on the formation).
    pub proxy: Option<ChaosProxy>,
}

impl std::ops::Deref for UgcApp {
    type Target = ServiceUnderTest;

    fn deref(&self) -> &ServiceUnderTest {
        &self.served
    }
}

impl UgcApp {
    /// On a UGC database of the test stack's single server, behind a proxy that can cut it off.
    pub async fn spawn() -> Self {
        let ugc = TestDatabase::create("ugc", agora_ugc::migrations).await;
        let proxy = ChaosProxy::start(server_of(&ugc.url)).await;
        let through_proxy = url_through(&ugc.url, proxy.address);
        Self::spawn_with(ugc, through_proxy, Some(proxy)).await
    }

    /// On a UGC database of the replicated formation, reached by its multi-host URL as
    /// `./dev up --replicated` configures it.
    pub async fn spawn_on_formation(primary_url: &str) -> Self {
        let ugc = TestDatabase::create_on(primary_url, "ugc", agora_ugc::migrations).await;
        let url = ugc.url.clone();
        Self::spawn_with(ugc, url, None).await
    }

    async fn spawn_with(ugc: TestDatabase, url: String, proxy: Option<ChaosProxy>) -> Self {
        let main = TestDatabase::create("social", agora_social::migrations).await;
        let settings =
            agora_platform::testing::platform_settings(&main.url, &unique_namespace("ugctest"));
        let config = UgcConfig {
            deadline_ms: 3_000,
            ..UgcConfig::for_database(url)
        };
        let service = agora_ugc::service(&config, &settings).unwrap();
        let served = ServiceUnderTest::serve(main, settings, service, "ugc-test").await;
        Self { served, ugc, proxy }
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value, reqwest::header::HeaderMap) {
        self.served.call(method, path, token, body, &[]).await
    }

    pub async fn ok(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Value {
        let (status, body, _) = self.call(method, path, token, body).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        body
    }

    pub async fn status(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> StatusCode {
        self.call(method, path, token, body).await.0
    }

    pub async fn rate(&self, token: &str, film: &str, score: i64) -> Value {
        self.ok(
            Method::PUT,
            &format!("/ugc/films/{film}/rating"),
            Some(token),
            Some(json!({"score": score})),
        )
        .await
    }

    pub async fn review(&self, token: &str, author: &str, text: &str, score: i64) -> Value {
        self.ok(
            Method::PUT,
            &format!("/ugc/films/{FILM}/reviews/{author}"),
            Some(token),
            Some(json!({"text": text, "score": score})),
        )
        .await
    }

    /// Every review of FILM in `sort` order, page by page.
    pub async fn all_reviews(&self, sort: &str, limit: usize) -> Vec<Value> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/ugc/films/{FILM}/reviews?sort={sort}&limit={limit}");
            if let Some(cursor) = &cursor {
                path.push_str(&format!("&cursor={cursor}"));
            }
            let page = self.ok(Method::GET, &path, None, None).await;
            let got = page["items"].as_array().unwrap().clone();
            assert!(got.len() <= limit);
            items.extend(got);
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return items,
            }
        }
    }

    pub async fn ugc_sql(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.ugc.url, NoTls).await.unwrap();
        tokio::spawn(connection);
        client
    }
}
