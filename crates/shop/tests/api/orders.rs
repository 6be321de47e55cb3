//! A shopaholic's way through the catalog, the cart and orders, and the stock under
//! concurrent checkouts.

use agora_shop::CartBackend;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::ShopApp;

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
