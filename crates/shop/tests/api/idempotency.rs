//! Retried writes with an `Idempotency-Key` happen once.

use agora_shop::CartBackend;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::ShopApp;

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
