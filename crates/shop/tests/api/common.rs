//! The shop in-process on fresh databases, and the calls the tests make.

use agora_platform::testing::{ServiceUnderTest, TestDatabase, unique_namespace};
use agora_shop::{CartBackend, ShopConfig};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub struct ShopApp {
    pub served: ServiceUnderTest,
    pub shop: TestDatabase,
}

impl std::ops::Deref for ShopApp {
    type Target = ServiceUnderTest;

    fn deref(&self) -> &ServiceUnderTest {
        &self.served
    }
}

impl ShopApp {
    pub async fn spawn(carts: CartBackend) -> Self {
        let main = TestDatabase::create("social", agora_social::migrations).await;
        let shop = TestDatabase::create("shop", agora_shop::migrations).await;
        let settings =
            agora_platform::testing::platform_settings(&main.url, &unique_namespace("shoptest"));
        let config = ShopConfig {
            carts,
            ..ShopConfig::for_database(&shop.url)
        };
        let service = agora_shop::service(&config, &settings).unwrap();
        let served = ServiceUnderTest::serve(main, settings, service, "shop-test").await;
        Self { served, shop }
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
        let (status, body, headers) = self.served.call(method, path, token, body, &headers).await;
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
