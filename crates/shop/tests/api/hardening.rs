//! Bad input and strangers get clear 4xx.

use agora_shop::CartBackend;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::ShopApp;

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
