//! The shop alone in its process, as `agora serve --services shop` runs it, on a fresh shop
//! database and a fresh main database (sessions) of the test stack. Users and tokens are made
//! directly: rows in `users`, sessions through the platform. Carts in PostgreSQL and in Redis
//! run the same tests.

use std::net::SocketAddr;

use agora_platform::session::Sessions;
use agora_platform::testing::TestDatabase;
use agora_shop::{CartBackend, ShopConfig};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::oneshot;

struct ShopApp {
    address: SocketAddr,
    main: TestDatabase,
    shop: TestDatabase,
    sessions: Sessions,
    client: reqwest::Client,
    _stop: oneshot::Sender<()>,
}

impl ShopApp {
    async fn spawn(carts: CartBackend) -> Self {
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

    async fn user(&self, name: &str) -> (String, String) {
        agora_platform::testing::user_with_session(&self.main.url, &self.sessions, name).await
    }

    async fn call(
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

    async fn ok(&self, method: Method, path: &str, token: &str, body: Option<Value>) -> Value {
        let (status, body, _) = self.call(method, path, Some(token), body, None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        body
    }

    async fn product(&self, token: &str, name: &str, price: i64, stock: i64) -> String {
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

    async fn stock(&self, product: &str) -> i64 {
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

    async fn set_line(&self, token: &str, product: &str, quantity: i64) -> Value {
        self.ok(
            Method::PUT,
            &format!("/shop/cart/items/{product}"),
            token,
            Some(json!({"quantity": quantity})),
        )
        .await
    }
}

async fn catalog_cart_and_order(carts: CartBackend) {
    let app = ShopApp::spawn(carts).await;
    let (_, seller) = app.user("Sally").await;
    let (_, buyer) = app.user("Bob").await;
    let tea = app.product(&seller, "Green tea", 45_000, 10).await;
    let pot = app.product(&seller, "Teapot", 120_000, 1).await;

    // Browsing: newest first, paged.
    let page = app
        .ok(
            Method::GET,
            "/shop/products?category=tea&limit=1",
            &buyer,
            None,
        )
        .await;
    assert_eq!(page["items"][0]["id"], json!(pot));
    let next = page["next_before"].as_str().unwrap().to_owned();
    let page = app
        .ok(
            Method::GET,
            &format!("/shop/products?category=tea&limit=1&before={next}"),
            &buyer,
            None,
        )
        .await;
    assert_eq!(page["items"][0]["id"], json!(tea));

    // The agony of choice.
    app.set_line(&buyer, &tea, 3).await;
    app.set_line(&buyer, &pot, 1).await;
    app.set_line(&buyer, &tea, 0).await;
    let cart = app.set_line(&buyer, &tea, 2).await;
    assert_eq!(cart["items"].as_array().unwrap().len(), 2);
    let cart = app.ok(Method::GET, "/shop/cart", &buyer, None).await;
    assert_eq!(cart["total_minor"], json!(2 * 45_000 + 120_000));

    // The order takes the stock at today's prices and empties the cart.
    let order = app.ok(Method::POST, "/shop/orders", &buyer, None).await;
    assert_eq!(order["state"], json!("created"));
    assert_eq!(order["total_minor"], json!(210_000));
    assert_eq!(app.stock(&tea).await, 8);
    assert_eq!(app.stock(&pot).await, 0);
    let cart = app.ok(Method::GET, "/shop/cart", &buyer, None).await;
    assert_eq!(cart["items"], json!([]));
    let order_id = order["id"].as_str().unwrap();

    // More than the stock: 409, nothing taken.
    app.set_line(&buyer, &pot, 1).await;
    app.set_line(&buyer, &tea, 1).await;
    let (status, body, _) = app
        .call(Method::POST, "/shop/orders", Some(&buyer), None, None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(app.stock(&tea).await, 8);

    // created → paid → shipped; a shipped order cannot be cancelled.
    let path = |action: &str| format!("/shop/orders/{order_id}/{action}");
    assert_eq!(
        app.ok(Method::POST, &path("pay"), &buyer, None).await["state"],
        json!("paid")
    );
    assert_eq!(
        app.ok(Method::POST, &path("ship"), &buyer, None).await["state"],
        json!("shipped")
    );
    let (status, _, _) = app
        .call(Method::POST, &path("cancel"), Some(&buyer), None, None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    // Cancelling returns the stock.
    app.set_line(&buyer, &pot, 0).await;
    let second = app.ok(Method::POST, "/shop/orders", &buyer, None).await;
    assert_eq!(app.stock(&tea).await, 7);
    let cancelled = app
        .ok(
            Method::POST,
            &format!("/shop/orders/{}/cancel", second["id"].as_str().unwrap()),
            &buyer,
            None,
        )
        .await;
    assert_eq!(cancelled["state"], json!("cancelled"));
    assert_eq!(app.stock(&tea).await, 8);

    // Orders are their owner's.
    let (status, _, _) = app
        .call(
            Method::GET,
            &format!("/shop/orders/{order_id}"),
            Some(&seller),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let mine = app.ok(Method::GET, "/shop/orders", &buyer, None).await;
    assert_eq!(mine["items"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_shopaholic_browses_fills_the_cart_and_orders_with_carts_in_postgres() {
    catalog_cart_and_order(CartBackend::Postgres).await;
}

#[tokio::test]
async fn a_shopaholic_browses_fills_the_cart_and_orders_with_carts_in_redis() {
    catalog_cart_and_order(CartBackend::Redis).await;
}

async fn idempotency(carts: CartBackend) {
    let app = ShopApp::spawn(carts).await;
    let (_, seller) = app.user("Sally").await;
    let (_, buyer) = app.user("Bob").await;
    let tea = app.product(&seller, "Green tea", 45_000, 10).await;
    let path = format!("/shop/cart/items/{tea}");

    let first = app
        .call(
            Method::PUT,
            &path,
            Some(&buyer),
            Some(json!({"quantity": 2})),
            Some("k1"),
        )
        .await;
    let again = app
        .call(
            Method::PUT,
            &path,
            Some(&buyer),
            Some(json!({"quantity": 2})),
            Some("k1"),
        )
        .await;
    assert_eq!(first.0, StatusCode::OK);
    assert_eq!(
        (again.0, &again.1, again.2),
        (StatusCode::OK, &first.1, true)
    );
    let other = app
        .call(
            Method::PUT,
            &path,
            Some(&buyer),
            Some(json!({"quantity": 3})),
            Some("k1"),
        )
        .await;
    assert_eq!(other.0, StatusCode::UNPROCESSABLE_ENTITY, "{}", other.1);

    // A checkout retried with its key orders once.
    let order = app
        .call(
            Method::POST,
            "/shop/orders",
            Some(&buyer),
            None,
            Some("order-1"),
        )
        .await;
    let retry = app
        .call(
            Method::POST,
            "/shop/orders",
            Some(&buyer),
            None,
            Some("order-1"),
        )
        .await;
    assert_eq!(order.0, StatusCode::OK, "{}", order.1);
    assert_eq!(
        (retry.0, &retry.1, retry.2),
        (StatusCode::OK, &order.1, true)
    );
    assert_eq!(app.stock(&tea).await, 8);
    let mine = app.ok(Method::GET, "/shop/orders", &buyer, None).await;
    assert_eq!(mine["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn retried_writes_with_an_idempotency_key_happen_once_with_carts_in_postgres() {
    idempotency(CartBackend::Postgres).await;
}

#[tokio::test]
async fn retried_writes_with_an_idempotency_key_happen_once_with_carts_in_redis() {
    idempotency(CartBackend::Redis).await;
}

#[tokio::test]
async fn concurrent_checkouts_never_sell_more_than_the_stock() {
    let app = ShopApp::spawn(CartBackend::Postgres).await;
    let (_, seller) = app.user("Sally").await;
    let pot = app.product(&seller, "Last teapots", 120_000, 3).await;
    let mut buyers = Vec::new();
    for n in 0..8 {
        let (_, token) = app.user(&format!("Buyer{n}")).await;
        app.set_line(&token, &pot, 1).await;
        buyers.push(token);
    }
    let app = std::sync::Arc::new(app);
    let mut tasks = Vec::new();
    for token in buyers {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            app.call(Method::POST, "/shop/orders", Some(&token), None, None)
                .await
                .0
        }));
    }
    let mut sold = 0;
    for task in tasks {
        match task.await.unwrap() {
            StatusCode::OK => sold += 1,
            StatusCode::CONFLICT => {}
            other => panic!("checkout answered {other}"),
        }
    }
    assert_eq!(sold, 3);
    assert_eq!(app.stock(&pot).await, 0);
}

#[tokio::test]
async fn bad_input_and_strangers_get_clear_4xx() {
    let app = ShopApp::spawn(CartBackend::Postgres).await;
    let (seller_id, seller) = app.user("Sally").await;
    let (_, buyer) = app.user("Bob").await;
    let tea = app.product(&seller, "Green tea", 45_000, 10).await;
    let cases = [
        (
            Method::POST,
            "/shop/products".to_owned(),
            Some(json!({"name": "x", "category": "tea", "price_minor": -1})),
        ),
        (
            Method::POST,
            "/shop/products".to_owned(),
            Some(json!({"name": "x", "category": "Tea Pots", "price_minor": 1})),
        ),
        (
            Method::PUT,
            format!("/shop/cart/items/{tea}"),
            Some(json!({"quantity": 1001})),
        ),
        (
            Method::PUT,
            "/shop/cart/items/0123".to_owned(),
            Some(json!({"quantity": 1})),
        ),
        (Method::GET, "/shop/products?limit=1000".to_owned(), None),
        (
            Method::POST,
            "/shop/users".to_owned(),
            Some(json!({"name": "Bob", "email": "not-an-email"})),
        ),
    ];
    for (method, path, body) in cases {
        let (status, body, _) = app.call(method, &path, Some(&buyer), body, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert!(body["message"].is_string());
    }
    let (status, _, _) = app
        .call(
            Method::PUT,
            "/shop/cart/items/424242",
            Some(&buyer),
            Some(json!({"quantity": 1})),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = app
        .call(
            Method::PUT,
            &format!("/shop/products/{tea}"),
            Some(&buyer),
            Some(json!({"name": "Mine now", "category": "tea", "price_minor": 1})),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = app
        .call(
            Method::GET,
            &format!("/shop/users/{seller_id}"),
            Some(&buyer),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = app.call(Method::GET, "/shop/cart", None, None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Customer records: create, read, change, a second create is a conflict, delete.
    let record =
        json!({"name": "Sally Seller", "email": "sally@example.com", "address": "1 Tea St"});
    app.ok(Method::POST, "/shop/users", &seller, Some(record.clone()))
        .await;
    let (status, _, _) = app
        .call(
            Method::POST,
            "/shop/users",
            Some(&seller),
            Some(record),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let changed = app
        .ok(
            Method::PUT,
            &format!("/shop/users/{seller_id}"),
            &seller,
            Some(json!({"name": "Sally", "email": "sally@example.com", "address": "2 Tea St"})),
        )
        .await;
    assert_eq!(changed["address"], json!("2 Tea St"));
    app.ok(
        Method::DELETE,
        &format!("/shop/users/{seller_id}"),
        &seller,
        None,
    )
    .await;
    let (status, _, _) = app
        .call(
            Method::GET,
            &format!("/shop/users/{seller_id}"),
            Some(&seller),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let _ = &app.shop;
}
