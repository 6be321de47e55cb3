//! A dialogs service alone in its process, as `agora serve --services dialogs` runs it: its
//! main database (users, sessions, the shard map) and two shard databases on two of the test
//! stack's shard servers. Users and tokens are made directly (the social network is not
//! running): rows in `users`, sessions through the platform.

#![allow(dead_code)] // each test uses a different subset

use std::collections::HashMap;

use agora_dialogs::config::{DialogsConfig, ShardServer};
use agora_platform::ids::UserId;
pub use agora_platform::testing::eventually;
pub use agora_platform::testing::redis_url;
use agora_platform::testing::{ServiceUnderTest, TestDatabase, shard_admin_urls, unique_namespace};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_postgres::NoTls;

/// A shard database of the test stack.
pub async fn shard_database(server: usize) -> TestDatabase {
    let urls = shard_admin_urls();
    TestDatabase::create_on(
        &urls[server],
        "dialogs_shard",
        agora_dialogs::shard_migrations,
    )
    .await
}

pub struct DialogsApp {
    pub served: ServiceUnderTest,
    pub shards: Vec<TestDatabase>,
    pub config: DialogsConfig,
    pub namespace: String,
}

impl std::ops::Deref for DialogsApp {
    type Target = ServiceUnderTest;

    fn deref(&self) -> &ServiceUnderTest {
        &self.served
    }
}

impl DialogsApp {
    /// Two shard servers, `logical` logical shards.
    pub async fn spawn(logical: u32) -> Self {
        let shards = vec![shard_database(0).await, shard_database(1).await];
        let servers = shards
            .iter()
            .enumerate()
            .map(|(at, database)| ShardServer {
                name: format!("shard{}", at + 1),
                url: database.url.clone(),
            })
            .collect();
        Self::spawn_on(shards, servers, logical).await
    }

    /// Shard servers given by URL (e.g. one behind a proxy that can cut it off).
    pub async fn spawn_on(
        shards: Vec<TestDatabase>,
        servers: Vec<ShardServer>,
        logical: u32,
    ) -> Self {
        let main = TestDatabase::create("social", agora_social::migrations).await;
        let config = DialogsConfig {
            logical_shards: logical,
            map_poll_ms: 1_000,
            ..DialogsConfig::for_shards(servers)
        };
        agora_dialogs::migrate(&config, &main.url).await.unwrap();
        let namespace = unique_namespace("dialogtest");
        let settings = agora_platform::testing::platform_settings(&main.url, &namespace);
        let service = agora_dialogs::service(&config, &settings).await.unwrap();
        let served = ServiceUnderTest::serve(main, settings, service, "dialogs-test").await;
        Self {
            served,
            shards,
            config,
            namespace,
        }
    }

    pub async fn sql(&self) -> tokio_postgres::Client {
        connect(&self.main.url).await
    }

    /// A user row and a session token for it.
    pub async fn user(&self, name: &str) -> (UserId, String) {
        let (id, token) = self.served.user(name).await;
        (UserId(id.parse().unwrap()), token)
    }

    pub async fn send(&self, token: &str, to: UserId, text: &str) -> reqwest::Response {
        self.client
            .post(self.url(&format!("/dialog/{to}/send")))
            .bearer_auth(token)
            .json(&json!({ "text": text }))
            .send()
            .await
            .unwrap()
    }

    /// Sends and expects 200; the message id.
    pub async fn send_ok(&self, token: &str, to: UserId, text: &str) -> String {
        let response = self.send(token, to, text).await;
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, StatusCode::OK, "send answered {body}");
        body["id"].as_str().unwrap().to_owned()
    }

    pub async fn list(&self, token: &str, with: UserId, query: &str) -> reqwest::Response {
        self.client
            .get(self.url(&format!("/dialog/{with}/list{query}")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// The whole dialog, newest first, read page by page.
    pub async fn whole_dialog(&self, token: &str, with: UserId) -> Vec<Value> {
        let mut all: Vec<Value> = Vec::new();
        let mut query = "?limit=1000".to_owned();
        loop {
            let response = self.list(token, with, &query).await;
            assert_eq!(response.status(), StatusCode::OK);
            let page: Vec<Value> = response.json().await.unwrap();
            let Some(last) = page.last() else {
                return all;
            };
            query = format!("?limit=1000&before={}", last["id"].as_str().unwrap());
            all.extend(page);
        }
    }
}

pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

/// Asserts an error response: status, the envelope, the request id.
pub async fn assert_error(response: reqwest::Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status, "unexpected status");
    let body: Value = response.json().await.unwrap();
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(body["request_id"].as_str().is_some(), "{body}");
    body
}

impl DialogsApp {
    /// `GET /dialogs/unread`: the total and each sender's count.
    pub async fn unread(&self, token: &str) -> (i64, HashMap<String, i64>) {
        let response = self
            .client
            .get(self.url("/dialogs/unread"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        let dialogs = body["dialogs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["user_id"].as_str().unwrap().to_owned(),
                    d["unread"].as_i64().unwrap(),
                )
            })
            .collect();
        (body["total"].as_i64().unwrap(), dialogs)
    }

    /// Deletes this deployment's dialog keys from Redis, as a Redis restart without
    /// persistence would.
    pub async fn flush_dialog_keys(&self) {
        agora_platform::testing::delete_redis_keys(
            &redis_url(),
            &format!("{}:dialogs:*", self.namespace),
        )
        .await;
    }

    /// Rows waiting in the shards' unread outboxes.
    pub async fn outbox_rows(&self) -> i64 {
        let mut rows = 0;
        for shard in &self.shards {
            rows += connect(&shard.url)
                .await
                .query_one("SELECT count(*) FROM unread_outbox", &[])
                .await
                .unwrap()
                .get::<_, i64>(0);
        }
        rows
    }

    /// `agora dialogs repair-unread`, in process.
    pub async fn repair_unread(&self) -> u64 {
        let settings = agora_platform::testing::platform_settings(&self.main.url, &self.namespace);
        agora_dialogs::repair_unread(&self.config, &settings)
            .await
            .unwrap()
    }
}
