//! The shop in-process on fresh databases, and the calls the tests make.

use std::net::SocketAddr;

use agora_platform::session::Sessions;
use agora_platform::testing::TestDatabase;
use agora_shop::{CartBackend, ShopConfig};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::oneshot;

pub struct ShopApp {
    pub address: SocketAddr,
    pub main: TestDatabase,
    pub shop: TestDatabase,
    pub sessions: Sessions,
    pub client: reqwest::Client,
    _stop: oneshot::Sender<()>,
}

impl ShopApp {
    pub async fn spawn(carts: CartBackend) -> Self {
        let main = TestDatabase::create("social", agora_social::migrations).await;
        let shop = TestDatabase::create("shop", agora_shop::migrations).await;
        let settings = agora_platform::testing::platform_settings(
            &main.url,
            &format!("shoptest{}-{}", std::process::id(), shop.name()),
        );
        let config = ShopConfig {
            carts,
            ..ShopConfig::for_database(&shop.url)
        };
        let service = agora_shop::service(&config, &settings).unwrap();
        let (address, stop) = agora_platform::testing::serve(vec![service]).await;
        let sessions = agora_platform::testing::sessions(&settings, "shop-test");
        Self {
            address,
            main,
            shop,
            sessions,
            client: reqwest::Client::new(),
            _stop: stop,
        }
    }

    pub async fn user(&self, name: &str) -> (String, String) {
        agora_platform::testing::user_with_session(&self.main.url, &self.sessions, name).await
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        key: Option<&str>,
    ) -> (StatusCode, Value, bool) {
        let headers: Vec<(&str, &str)> = key
            .map(|key| ("Idempotency-Key", key))
            .into_iter()
            .collect();
        let (status, body, headers) = agora_platform::testing::call_json(
            &self.client,
            self.address,
            method,
            path,
            token,
            body,
            &headers,
        )
        .await;
        (status, body, headers.contains_key("idempotent-replayed"))
    }

    pub async fn ok(&self, method: Method, path: &str, token: &str, body: Option<Value>) -> Value {
        let (status, body, _) = self.call(method, path, Some(token), body, None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        body
    }

    pub async fn product(&self, token: &str, name: &str, price: i64, stock: i64) -> String {
        let body = self
            .ok(
                Method::POST,
                "/shop/products",
                token,
                Some(
                    json!({"name": name, "category": "tea", "price_minor": price, "stock": stock}),
                ),
            )
            .await;
        body["id"].as_str().unwrap().to_owned()
    }

    pub async fn stock(&self, product: &str) -> i64 {
        let (_, body, _) = self
            .call(
                Method::GET,
                &format!("/shop/products/{product}"),
                None,
                None,
                None,
            )
            .await;
        body["stock"].as_i64().unwrap()
    }

    pub async fn set_line(&self, token: &str, product: &str, quantity: i64) -> Value {
        self.ok(
            Method::PUT,
            &format!("/shop/cart/items/{product}"),
            token,
            Some(json!({"quantity": quantity})),
        )
        .await
    }
}
