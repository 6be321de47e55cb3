//! The shop's HTTP face (docs/shop.md): thin handlers that parse, call [`Shop`] and render.

use agora_platform::db;
use agora_platform::http::{JsonBody, OpsEndpoints, PathParams, QueryParams};
use agora_platform::ids;
use agora_platform::service::Service;
use agora_platform::session::Authenticated;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::domain::{self, CustomerRequest, OrderAction, Page, ProductRequest};
use crate::error::ShopError;
use crate::rules::{Key, Reply, Shop};
use crate::store::{CartLine, Order, Product};

/// Every path the shop answers.
pub const PATHS: [&str; 11] = [
    "/shop/products",
    "/shop/products/{id}",
    "/shop/users",
    "/shop/users/{id}",
    "/shop/cart",
    "/shop/cart/items/{product_id}",
    "/shop/orders",
    "/shop/orders/{id}",
    "/shop/orders/{id}/pay",
    "/shop/orders/{id}/ship",
    "/shop/orders/{id}/cancel",
];

pub fn router(shop: Shop) -> Router {
    Router::new()
        .route("/shop/products", get(products).post(create_product))
        .route(
            "/shop/products/{id}",
            get(product).put(update_product).delete(delete_product),
        )
        .route("/shop/users", post(create_customer))
        .route(
            "/shop/users/{id}",
            get(customer).put(update_customer).delete(delete_customer),
        )
        .route("/shop/cart", get(cart).delete(empty_cart))
        .route(
            "/shop/cart/items/{product_id}",
            put(set_cart_item).delete(remove_cart_item),
        )
        .route("/shop/orders", get(orders).post(checkout))
        .route("/shop/orders/{id}", get(order))
        .route("/shop/orders/{id}/pay", post(pay))
        .route("/shop/orders/{id}/ship", post(ship))
        .route("/shop/orders/{id}/cancel", post(cancel))
        .with_state(shop)
}

/// The shop as a service of the platform: its routes and its database's readiness.
pub fn service_of(shop: Shop) -> Service {
    let pool = shop.store().pool().clone();
    let scrape_pool = pool.clone();
    let sessions = shop.sessions().cache().clone();
    let ops = OpsEndpoints::default()
        .check("shop_database", db::readiness_check(pool))
        .on_scrape(move || db::record_pool_metrics(&scrape_pool, "shop"));
    Service::new("shop", router(shop), ops).background(move |stop| sessions.listen(stop))
}

fn id(field: &'static str, text: &str) -> Result<i64, ShopError> {
    ids::parse(text).ok_or_else(|| ShopError::invalid(format!("{field} must be an id")))
}

/// The optional `Idempotency-Key` of a write, bound to what the request asks.
fn idempotency_key(headers: &HeaderMap, request: String) -> Result<Option<Key>, ShopError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|key| {
            !key.is_empty() && key.len() <= 200 && key.bytes().all(|b| b.is_ascii_graphic())
        })
        .ok_or_else(|| {
            ShopError::invalid("Idempotency-Key must be 1-200 visible ASCII characters")
        })?;
    Ok(Some(Key::new(key.to_owned(), &request)))
}

/// A stored or fresh JSON reply; a replay says so in `Idempotent-Replayed: true`.
fn reply(reply: Reply) -> Response {
    let mut response = (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        reply.body,
    )
        .into_response();
    if reply.replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

#[derive(Serialize)]
struct PageBody<T> {
    items: Vec<T>,
    /// Pass as `before` for the next page; absent on the last one.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_before: Option<String>,
}

fn page_body<T>(items: Vec<T>, page: Page, id_of: impl Fn(&T) -> i64) -> PageBody<T> {
    let next_before = (items.len() as i64 == page.limit)
        .then(|| items.last().map(|item| id_of(item).to_string()))
        .flatten();
    PageBody { items, next_before }
}

// --- catalog -----------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductsQuery {
    category: Option<String>,
    before: Option<String>,
    limit: Option<String>,
}

async fn products(
    State(shop): State<Shop>,
    QueryParams(query): QueryParams<ProductsQuery>,
) -> Result<Json<PageBody<Product>>, ShopError> {
    let page = Page::parse(query.before, query.limit)?;
    let category = query
        .category
        .map(|c| domain::category(Some(c)))
        .transpose()?;
    let items = shop.products(category.as_deref(), page).await?;
    Ok(Json(page_body(items, page, |product| product.id)))
}

async fn create_product(
    State(shop): State<Shop>,
    caller: Authenticated,
    JsonBody(request): JsonBody<ProductRequest>,
) -> Result<Json<Product>, ShopError> {
    let fields = domain::ProductFields::parse(request)?;
    Ok(Json(shop.create_product(caller.user.0, fields).await?))
}

async fn product(
    State(shop): State<Shop>,
    PathParams(product): PathParams<String>,
) -> Result<Json<Product>, ShopError> {
    Ok(Json(shop.product(id("id", &product)?).await?))
}

async fn update_product(
    State(shop): State<Shop>,
    caller: Authenticated,
    PathParams(product): PathParams<String>,
    JsonBody(request): JsonBody<ProductRequest>,
) -> Result<Json<Product>, ShopError> {
    let product = id("id", &product)?;
    let fields = domain::ProductFields::parse(request)?;
    Ok(Json(
        shop.update_product(caller.user.0, product, fields).await?,
    ))
}

async fn delete_product(
    State(shop): State<Shop>,
    caller: Authenticated,
    PathParams(product): PathParams<String>,
) -> Result<(), ShopError> {
    shop.delete_product(caller.user.0, id("id", &product)?)
        .await
}

// --- customers ---------------------------------------------------------------------------

async fn create_customer(
    State(shop): State<Shop>,
    caller: Authenticated,
    JsonBody(request): JsonBody<CustomerRequest>,
) -> Result<Json<crate::store::Customer>, ShopError> {
    let fields = domain::CustomerFields::parse(request)?;
    Ok(Json(shop.create_customer(caller.user.0, fields).await?))
}

async fn customer(
    State(shop): State<Shop>,
    caller: Authenticated,
    PathParams(user): PathParams<String>,
) -> Result<Json<crate::store::Customer>, ShopError> {
    Ok(Json(shop.customer(caller.user.0, id("id", &user)?).await?))
}

async fn update_customer(
    State(shop): State<Shop>,
    caller: Authenticated,
    PathParams(user): PathParams<String>,
    JsonBody(request): JsonBody<CustomerRequest>,
) -> Result<Json<crate::store::Customer>, ShopError> {
    let user = id("id", &user)?;
    let fields = domain::CustomerFields::parse(request)?;
    Ok(Json(
        shop.update_customer(caller.user.0, user, fields).await?,
    ))
}

async fn delete_customer(
    State(shop): State<Shop>,
    caller: Authenticated,
    PathParams(user): PathParams<String>,
) -> Result<(), ShopError> {
    shop.delete_customer(caller.user.0, id("id", &user)?).await
}

// --- cart --------------------------------------------------------------------------------

#[derive(Serialize)]
struct CartItem {
    #[serde(flatten)]
    line: CartLine,
    name: String,
    price_minor: i64,
    line_total_minor: i64,
    /// Stock left in the catalog now; the order decides.
    in_stock: i32,
}

#[derive(Serialize)]
struct CartBody {
    items: Vec<CartItem>,
    total_minor: i64,
}

async fn cart(
    State(shop): State<Shop>,
    caller: Authenticated,
) -> Result<Json<CartBody>, ShopError> {
    let (lines, products) = shop.cart(caller.user.0).await?;
    let mut total: i64 = 0;
    let items = lines
        .into_iter()
        .filter_map(|line| {
            // A product removed from the catalog drops out of the cart.
            let product = products.iter().find(|p| p.id == line.product_id)?;
            let line_total = product.price_minor.saturating_mul(i64::from(line.quantity));
            total = total.saturating_add(line_total);
            Some(CartItem {
                line,
                name: product.name.clone(),
                price_minor: product.price_minor,
                line_total_minor: line_total,
                in_stock: product.stock,
            })
        })
        .collect();
    Ok(Json(CartBody {
        items,
        total_minor: total,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CartItemRequest {
    quantity: Option<i64>,
}

async fn set_cart_item(
    State(shop): State<Shop>,
    caller: Authenticated,
    headers: HeaderMap,
    PathParams(product): PathParams<String>,
    JsonBody(request): JsonBody<CartItemRequest>,
) -> Result<Response, ShopError> {
    let product = id("product_id", &product)?;
    let quantity = domain::quantity(request.quantity)?;
    let key = idempotency_key(&headers, format!("PUT cart {product} {quantity}"))?;
    Ok(reply(
        shop.change_cart(caller.user.0, Some(product), quantity, key)
            .await?,
    ))
}

async fn remove_cart_item(
    State(shop): State<Shop>,
    caller: Authenticated,
    headers: HeaderMap,
    PathParams(product): PathParams<String>,
) -> Result<Response, ShopError> {
    let product = id("product_id", &product)?;
    let key = idempotency_key(&headers, format!("DELETE cart {product}"))?;
    Ok(reply(
        shop.change_cart(caller.user.0, Some(product), 0, key)
            .await?,
    ))
}

async fn empty_cart(
    State(shop): State<Shop>,
    caller: Authenticated,
    headers: HeaderMap,
) -> Result<Response, ShopError> {
    let key = idempotency_key(&headers, "DELETE cart".to_owned())?;
    Ok(reply(shop.change_cart(caller.user.0, None, 0, key).await?))
}

// --- orders ------------------------------------------------------------------------------

async fn checkout(
    State(shop): State<Shop>,
    caller: Authenticated,
    headers: HeaderMap,
) -> Result<Response, ShopError> {
    let key = idempotency_key(&headers, "POST order".to_owned())?;
    Ok(reply(shop.checkout(caller.user.0, key).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrdersQuery {
    before: Option<String>,
    limit: Option<String>,
}

async fn orders(
    State(shop): State<Shop>,
    caller: Authenticated,
    QueryParams(query): QueryParams<OrdersQuery>,
) -> Result<Json<PageBody<Order>>, ShopError> {
    let page = Page::parse(query.before, query.limit)?;
    let items = shop.orders(caller.user.0, page).await?;
    Ok(Json(page_body(items, page, |order| order.id)))
}

async fn order(
    State(shop): State<Shop>,
    caller: Authenticated,
    PathParams(order): PathParams<String>,
) -> Result<Json<Order>, ShopError> {
    Ok(Json(shop.order(caller.user.0, id("id", &order)?).await?))
}

async fn move_order(
    shop: Shop,
    caller: Authenticated,
    headers: HeaderMap,
    order: String,
    action: OrderAction,
) -> Result<Response, ShopError> {
    let order = id("id", &order)?;
    let key = idempotency_key(&headers, format!("POST order {order} {}", action.verb()))?;
    Ok(reply(
        shop.move_order(caller.user.0, order, action, key).await?,
    ))
}

async fn pay(
    State(shop): State<Shop>,
    caller: Authenticated,
    headers: HeaderMap,
    PathParams(order): PathParams<String>,
) -> Result<Response, ShopError> {
    move_order(shop, caller, headers, order, OrderAction::Pay).await
}

async fn ship(
    State(shop): State<Shop>,
    caller: Authenticated,
    headers: HeaderMap,
    PathParams(order): PathParams<String>,
) -> Result<Response, ShopError> {
    move_order(shop, caller, headers, order, OrderAction::Ship).await
}

async fn cancel(
    State(shop): State<Shop>,
    caller: Authenticated,
    headers: HeaderMap,
    PathParams(order): PathParams<String>,
) -> Result<Response, ShopError> {
    move_order(shop, caller, headers, order, OrderAction::Cancel).await
}
