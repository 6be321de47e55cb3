//! SQL, and nothing else. Every id and timestamp is a parameter (see the migration: pgpool-II
//! runs each write on every backend).

use agora_platform::db::{self, DbError, DbPool, Lease};
use deadpool_postgres::Transaction;
use serde::Serialize;
use time::OffsetDateTime;
use tokio_postgres::Row;

use crate::domain::{CustomerFields, OrderAction, OrderState, Page, ProductFields};
use crate::error::ShopError;

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[derive(Debug, Clone, Serialize)]
pub struct Product {
    #[serde(serialize_with = "agora_platform::ids::as_text")]
    pub id: i64,
    #[serde(serialize_with = "agora_platform::ids::as_text")]
    pub seller_id: i64,
    pub name: String,
    pub description: String,
    pub category: String,
    pub price_minor: i64,
    pub stock: i32,
    pub created_at: String,
    pub updated_at: String,
}

const PRODUCT_COLUMNS: &str =
    "id, seller_id, name, description, category, price_minor, stock, created_at, updated_at";

impl From<&Row> for Product {
    fn from(row: &Row) -> Self {
        Self {
            id: row.get(0),
            seller_id: row.get(1),
            name: row.get(2),
            description: row.get(3),
            category: row.get(4),
            price_minor: row.get(5),
            stock: row.get(6),
            created_at: rfc3339(row.get(7)),
            updated_at: rfc3339(row.get(8)),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Customer {
    #[serde(serialize_with = "agora_platform::ids::as_text")]
    pub user_id: i64,
    pub name: String,
    pub email: String,
    pub address: String,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&Row> for Customer {
    fn from(row: &Row) -> Self {
        Self {
            user_id: row.get(0),
            name: row.get(1),
            email: row.get(2),
            address: row.get(3),
            created_at: rfc3339(row.get(4)),
            updated_at: rfc3339(row.get(5)),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct OrderLine {
    #[serde(serialize_with = "agora_platform::ids::as_text")]
    pub product_id: i64,
    pub name: String,
    pub price_minor: i64,
    pub quantity: i32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Order {
    #[serde(serialize_with = "agora_platform::ids::as_text")]
    pub id: i64,
    pub state: &'static str,
    pub total_minor: i64,
    pub lines: Vec<OrderLine>,
    pub created_at: String,
    pub updated_at: String,
}

/// A cart line as stored: product and quantity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CartLine {
    #[serde(serialize_with = "agora_platform::ids::as_text")]
    pub product_id: i64,
    pub quantity: i32,
}

/// What a conditional change found.
pub enum Ownership {
    Changed,
    NotFound,
    NotOwner,
}

/// A request's `Idempotency-Key`, with the hash of what it asked.
pub struct Idempotency<'a> {
    pub key: &'a str,
    pub request_hash: &'a [u8],
}

/// Outcome of claiming a key inside the write's transaction.
enum Claim {
    New,
    Replay(String),
}

#[derive(Clone)]
pub struct Store {
    pool: DbPool,
}

impl Store {
    pub fn new(pool: DbPool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &DbPool {
        &self.pool
    }

    // --- products ------------------------------------------------------------------------

    pub async fn insert_product(
        &self,
        id: i64,
        seller: i64,
        fields: &ProductFields,
        now: OffsetDateTime,
    ) -> Result<Product, DbError> {
        let db = Lease::get(&self.pool).await?;
        let statement = db
            .prepare_cached(&format!(
                "INSERT INTO products ({PRODUCT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
                 RETURNING {PRODUCT_COLUMNS}"
            ))
            .await?;
        let row = db
            .query_one(
                &statement,
                &[
                    &id,
                    &seller,
                    &fields.name,
                    &fields.description,
                    &fields.category,
                    &fields.price_minor,
                    &fields.stock,
                    &now,
                ],
            )
            .await?;
        Ok(Product::from(&row))
    }

    pub async fn product(&self, id: i64) -> Result<Option<Product>, DbError> {
        let db = Lease::get(&self.pool).await?;
        let statement = db
            .prepare_cached(&format!(
                "SELECT {PRODUCT_COLUMNS} FROM products WHERE id = $1"
            ))
            .await?;
        Ok(db
            .query_opt(&statement, &[&id])
            .await?
            .as_ref()
            .map(Product::from))
    }

    pub async fn products_by_ids(&self, ids: &[i64]) -> Result<Vec<Product>, DbError> {
        let db = Lease::get(&self.pool).await?;
        let statement = db
            .prepare_cached(&format!(
                "SELECT {PRODUCT_COLUMNS} FROM products WHERE id = ANY($1)"
            ))
            .await?;
        Ok(db
            .query(&statement, &[&ids])
            .await?
            .iter()
            .map(Product::from)
            .collect())
    }

    /// Newest first, by category or across the catalog.
    pub async fn products(
        &self,
        category: Option<&str>,
        page: Page,
    ) -> Result<Vec<Product>, DbError> {
        let db = Lease::get(&self.pool).await?;
        let rows = match category {
            Some(category) => {
                let statement = db
                    .prepare_cached(&format!(
                        "SELECT {PRODUCT_COLUMNS} FROM products WHERE category = $1 AND id < $2 \
                         ORDER BY id DESC LIMIT $3"
                    ))
                    .await?;
                db.query(&statement, &[&category, &page.before, &page.limit])
                    .await?
            }
            None => {
                let statement = db
                    .prepare_cached(&format!(
                        "SELECT {PRODUCT_COLUMNS} FROM products WHERE id < $1 ORDER BY id DESC LIMIT $2"
                    ))
                    .await?;
                db.query(&statement, &[&page.before, &page.limit]).await?
            }
        };
        Ok(rows.iter().map(Product::from).collect())
    }

    pub async fn update_product(
        &self,
        id: i64,
        seller: i64,
        fields: &ProductFields,
        now: OffsetDateTime,
    ) -> Result<(Ownership, Option<Product>), DbError> {
        let db = Lease::get(&self.pool).await?;
        let statement = db
            .prepare_cached(&format!(
                "UPDATE products SET name = $3, description = $4, category = $5, price_minor = $6, \
                 stock = $7, updated_at = $8 WHERE id = $1 AND seller_id = $2 RETURNING {PRODUCT_COLUMNS}"
            ))
            .await?;
        let row = db
            .query_opt(
                &statement,
                &[
                    &id,
                    &seller,
                    &fields.name,
                    &fields.description,
                    &fields.category,
                    &fields.price_minor,
                    &fields.stock,
                    &now,
                ],
            )
            .await?;
        match row {
            Some(row) => Ok((Ownership::Changed, Some(Product::from(&row)))),
            None => Ok((self.product_ownership(id).await?, None)),
        }
    }

    pub async fn delete_product(&self, id: i64, seller: i64) -> Result<Ownership, DbError> {
        let db = Lease::get(&self.pool).await?;
        let statement = db
            .prepare_cached("DELETE FROM products WHERE id = $1 AND seller_id = $2")
            .await?;
        if db.execute(&statement, &[&id, &seller]).await? > 0 {
            return Ok(Ownership::Changed);
        }
        self.product_ownership(id).await
    }

    async fn product_ownership(&self, id: i64) -> Result<Ownership, DbError> {
        Ok(match self.product(id).await? {
            Some(_) => Ownership::NotOwner,
            None => Ownership::NotFound,
        })
    }

    // --- customers -----------------------------------------------------------------------

    /// `None` when the user has a record already.
    pub async fn insert_customer(
        &self,
        user: i64,
        fields: &CustomerFields,
        now: OffsetDateTime,
    ) -> Result<Option<Customer>, DbError> {
        let db = Lease::get(&self.pool).await?;
        let statement = db
            .prepare_cached(
                "INSERT INTO customers (user_id, name, email, address, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (user_id) DO NOTHING \
                 RETURNING user_id, name, email, address, created_at, updated_at",
            )
            .await?;
        Ok(db
            .query_opt(
                &statement,
                &[&user, &fields.name, &fields.email, &fields.address, &now],
            )
            .await?
            .as_ref()
            .map(Customer::from))
    }

    pub async fn customer(&self, user: i64) -> Result<Option<Customer>, DbError> {
        let db = Lease::get(&self.pool).await?;
        let statement = db
            .prepare_cached(
                "SELECT user_id, name, email, address, created_at, updated_at FROM customers \
                 WHERE user_id = $1",
            )
            .await?;
        Ok(db
            .query_opt(&statement, &[&user])
            .await?
            .as_ref()
            .map(Customer::from))
    }

    pub async fn update_customer(
        &self,
        user: i64,
        fields: &CustomerFields,
        now: OffsetDateTime,
    ) -> Result<Option<Customer>, DbError> {
        let db = Lease::get(&self.pool).await?;
        let statement = db
            .prepare_cached(
                "UPDATE customers SET name = $2, email = $3, address = $4, updated_at = $5 \
                 WHERE user_id = $1 RETURNING user_id, name, email, address, created_at, updated_at",
            )
            .await?;
        Ok(db
            .query_opt(
                &statement,
                &[&user, &fields.name, &fields.email, &fields.address, &now],
            )
            .await?
            .as_ref()
            .map(Customer::from))
    }

    pub async fn delete_customer(&self, user: i64) -> Result<bool, DbError> {
        let db = Lease::get(&self.pool).await?;
        let statement = db
            .prepare_cached("DELETE FROM customers WHERE user_id = $1")
            .await?;
        Ok(db.execute(&statement, &[&user]).await? > 0)
    }

    // --- idempotency ---------------------------------------------------------------------

    /// Claims the key inside `tx`. A concurrent request with the same key waits on the primary
    /// key until this transaction ends, then finds the stored reply.
    async fn claim(
        tx: &Transaction<'_>,
        user: i64,
        idempotency: &Idempotency<'_>,
        now: OffsetDateTime,
    ) -> Result<Claim, ShopError> {
        let statement = tx
            .prepare_cached(
                "INSERT INTO idempotency_keys (user_id, key, request_hash, created_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (user_id, key) DO NOTHING",
            )
            .await?;
        if tx
            .execute(
                &statement,
                &[&user, &idempotency.key, &idempotency.request_hash, &now],
            )
            .await?
            > 0
        {
            return Ok(Claim::New);
        }
        let statement = tx
            .prepare_cached(
                "SELECT request_hash, body FROM idempotency_keys WHERE user_id = $1 AND key = $2",
            )
            .await?;
        let row = tx.query_one(&statement, &[&user, &idempotency.key]).await?;
        let stored_hash: Vec<u8> = row.get(0);
        if stored_hash != idempotency.request_hash {
            return Err(ShopError::KeyReused);
        }
        // Written in the same transaction as the claim: a committed claim has its reply.
        Ok(Claim::Replay(
            row.get::<_, Option<String>>(1).unwrap_or_default(),
        ))
    }

    async fn remember(
        tx: &Transaction<'_>,
        user: i64,
        idempotency: &Idempotency<'_>,
        body: &str,
    ) -> Result<(), ShopError> {
        let statement = tx
            .prepare_cached(
                "UPDATE idempotency_keys SET status = 200, body = $3 WHERE user_id = $1 AND key = $2",
            )
            .await?;
        tx.execute(&statement, &[&user, &idempotency.key, &body])
            .await?;
        Ok(())
    }

    // --- carts in PostgreSQL -------------------------------------------------------------

    pub async fn cart(&self, user: i64) -> Result<Vec<CartLine>, DbError> {
        let db = Lease::get(&self.pool).await?;
        let statement = db
            .prepare_cached(
                "SELECT product_id, quantity FROM cart_lines WHERE user_id = $1 ORDER BY product_id",
            )
            .await?;
        Ok(db
            .query(&statement, &[&user])
            .await?
            .iter()
            .map(|row| CartLine {
                product_id: row.get(0),
                quantity: row.get(1),
            })
            .collect())
    }

    /// Sets a line (quantity 0 removes it; `product: None` empties the cart) and answers the
    /// cart as a JSON body, or the stored reply of an earlier request with the same key.
    pub async fn change_cart(
        &self,
        user: i64,
        product: Option<i64>,
        quantity: i32,
        idempotency: Option<&Idempotency<'_>>,
        now: OffsetDateTime,
    ) -> Result<(String, bool), ShopError> {
        let mut db = Lease::get(&self.pool).await?;
        let tx = db.transaction().await?;
        if let Some(idempotency) = idempotency
            && let Claim::Replay(body) = Self::claim(&tx, user, idempotency, now).await?
        {
            return Ok((body, true));
        }
        match product {
            None => {
                let statement = tx
                    .prepare_cached("DELETE FROM cart_lines WHERE user_id = $1")
                    .await?;
                tx.execute(&statement, &[&user]).await?;
            }
            Some(product) if quantity == 0 => {
                let statement = tx
                    .prepare_cached("DELETE FROM cart_lines WHERE user_id = $1 AND product_id = $2")
                    .await?;
                tx.execute(&statement, &[&user, &product]).await?;
            }
            Some(product) => {
                let statement = tx
                    .prepare_cached(
                        "INSERT INTO cart_lines (user_id, product_id, quantity, updated_at) \
                         SELECT $1, id, $3, $4 FROM products WHERE id = $2 \
                         ON CONFLICT (user_id, product_id) DO UPDATE SET quantity = $3, updated_at = $4",
                    )
                    .await?;
                if tx
                    .execute(&statement, &[&user, &product, &quantity, &now])
                    .await?
                    == 0
                {
                    return Err(ShopError::NotFound("product not found"));
                }
            }
        }
        let statement = tx
            .prepare_cached(
                "SELECT product_id, quantity FROM cart_lines WHERE user_id = $1 ORDER BY product_id",
            )
            .await?;
        let lines: Vec<CartLine> = tx
            .query(&statement, &[&user])
            .await?
            .iter()
            .map(|row| CartLine {
                product_id: row.get(0),
                quantity: row.get(1),
            })
            .collect();
        let body = cart_body(&lines);
        if let Some(idempotency) = idempotency {
            Self::remember(&tx, user, idempotency, &body).await?;
        }
        db::commit(&self.pool, tx).await?;
        Ok((body, false))
    }

    // --- orders --------------------------------------------------------------------------

    /// Turns the cart into an order: takes the stock of every line (all or nothing, decided by
    /// the database: the first checkout wins), records the prices of now, empties the cart.
    /// `lines` are the cart's lines when the cart lives elsewhere; `None` reads (and empties)
    /// the cart of `cart_lines` in the same transaction.
    pub async fn checkout(
        &self,
        user: i64,
        order_id: i64,
        lines: Option<&[CartLine]>,
        idempotency: Option<&Idempotency<'_>>,
        now: OffsetDateTime,
    ) -> Result<(String, bool), ShopError> {
        let mut db = Lease::get(&self.pool).await?;
        let tx = db.transaction().await?;
        if let Some(idempotency) = idempotency
            && let Claim::Replay(body) = Self::claim(&tx, user, idempotency, now).await?
        {
            return Ok((body, true));
        }
        let from_table = lines.is_none();
        let mut lines: Vec<CartLine> = match lines {
            Some(lines) => lines.to_vec(),
            None => {
                let statement = tx
                    .prepare_cached(
                        "SELECT product_id, quantity FROM cart_lines WHERE user_id = $1 \
                         ORDER BY product_id FOR UPDATE",
                    )
                    .await?;
                tx.query(&statement, &[&user])
                    .await?
                    .iter()
                    .map(|row| CartLine {
                        product_id: row.get(0),
                        quantity: row.get(1),
                    })
                    .collect()
            }
        };
        if lines.is_empty() {
            return Err(ShopError::conflict("the cart is empty"));
        }
        // One order of locking for everyone: two checkouts never wait on each other in a cycle.
        lines.sort_by_key(|line| line.product_id);
        let take = tx
            .prepare_cached(
                "UPDATE products SET stock = stock - $2, updated_at = $3 \
                 WHERE id = $1 AND stock >= $2 RETURNING name, price_minor",
            )
            .await?;
        let mut order_lines = Vec::with_capacity(lines.len());
        let mut total: i64 = 0;
        for line in &lines {
            let Some(row) = tx
                .query_opt(&take, &[&line.product_id, &line.quantity, &now])
                .await?
            else {
                let left = tx
                    .query_opt(
                        "SELECT name, stock FROM products WHERE id = $1",
                        &[&line.product_id],
                    )
                    .await?;
                return Err(match left {
                    Some(row) => ShopError::conflict(format!(
                        "not enough stock of {:?}: {} left, {} in the cart",
                        row.get::<_, String>(0),
                        row.get::<_, i32>(1),
                        line.quantity
                    )),
                    None => ShopError::conflict(format!(
                        "product {} is no longer sold; remove it from the cart",
                        line.product_id
                    )),
                });
            };
            let price: i64 = row.get(1);
            total = price
                .checked_mul(i64::from(line.quantity))
                .and_then(|amount| total.checked_add(amount))
                .ok_or_else(|| ShopError::conflict("the order's total is too large"))?;
            order_lines.push(OrderLine {
                product_id: line.product_id,
                name: row.get(0),
                price_minor: price,
                quantity: line.quantity,
            });
        }
        tx.execute(
            "INSERT INTO orders (id, user_id, state, total_minor, created_at, updated_at) \
             VALUES ($1, $2, 'created', $3, $4, $4)",
            &[&order_id, &user, &total, &now],
        )
        .await?;
        let insert_line = tx
            .prepare_cached(
                "INSERT INTO order_lines (order_id, product_id, name, price_minor, quantity) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .await?;
        for line in &order_lines {
            tx.execute(
                &insert_line,
                &[
                    &order_id,
                    &line.product_id,
                    &line.name,
                    &line.price_minor,
                    &line.quantity,
                ],
            )
            .await?;
        }
        if from_table {
            tx.execute("DELETE FROM cart_lines WHERE user_id = $1", &[&user])
                .await?;
        }
        let order = Order {
            id: order_id,
            state: OrderState::Created.as_str(),
            total_minor: total,
            lines: order_lines,
            created_at: rfc3339(now),
            updated_at: rfc3339(now),
        };
        let body = serde_json::to_string(&order).expect("serialisable");
        if let Some(idempotency) = idempotency {
            Self::remember(&tx, user, idempotency, &body).await?;
        }
        db::commit(&self.pool, tx).await?;
        Ok((body, false))
    }

    /// The user's order; `None` for another user's order as for a missing one.
    pub async fn order(&self, user: i64, id: i64) -> Result<Option<Order>, DbError> {
        let db = Lease::get(&self.pool).await?;
        let row = db
            .query_opt(
                "SELECT id, state, total_minor, created_at, updated_at FROM orders \
                 WHERE id = $1 AND user_id = $2",
                &[&id, &user],
            )
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let mut orders = self.with_lines(&db, vec![row]).await?;
        Ok(orders.pop())
    }

    /// The user's orders, newest first.
    pub async fn orders(&self, user: i64, page: Page) -> Result<Vec<Order>, DbError> {
        let db = Lease::get(&self.pool).await?;
        let statement = db
            .prepare_cached(
                "SELECT id, state, total_minor, created_at, updated_at FROM orders \
                 WHERE user_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
            )
            .await?;
        let rows = db
            .query(&statement, &[&user, &page.before, &page.limit])
            .await?;
        self.with_lines(&db, rows).await
    }

    async fn with_lines(&self, db: &db::Connection, rows: Vec<Row>) -> Result<Vec<Order>, DbError> {
        let ids: Vec<i64> = rows.iter().map(|row| row.get(0)).collect();
        let statement = db
            .prepare_cached(
                "SELECT order_id, product_id, name, price_minor, quantity FROM order_lines \
                 WHERE order_id = ANY($1) ORDER BY order_id, product_id",
            )
            .await?;
        let mut lines = std::collections::HashMap::<i64, Vec<OrderLine>>::new();
        for row in db.query(&statement, &[&ids]).await? {
            lines.entry(row.get(0)).or_default().push(OrderLine {
                product_id: row.get(1),
                name: row.get(2),
                price_minor: row.get(3),
                quantity: row.get(4),
            });
        }
        Ok(rows
            .iter()
            .map(|row| {
                let id: i64 = row.get(0);
                Order {
                    id,
                    state: OrderState::parse(row.get(1)).map_or("unknown", OrderState::as_str),
                    total_minor: row.get(2),
                    lines: lines.remove(&id).unwrap_or_default(),
                    created_at: rfc3339(row.get(3)),
                    updated_at: rfc3339(row.get(4)),
                }
            })
            .collect())
    }

    /// Moves an order along its life; a cancelled order's stock goes back to the catalog.
    pub async fn move_order(
        &self,
        user: i64,
        id: i64,
        action: OrderAction,
        idempotency: Option<&Idempotency<'_>>,
        now: OffsetDateTime,
    ) -> Result<(String, bool), ShopError> {
        let mut db = Lease::get(&self.pool).await?;
        let tx = db.transaction().await?;
        if let Some(idempotency) = idempotency
            && let Claim::Replay(body) = Self::claim(&tx, user, idempotency, now).await?
        {
            return Ok((body, true));
        }
        let (from, to) = action.transition();
        let from: Vec<&str> = from.iter().map(|state| state.as_str()).collect();
        let moved = tx
            .execute(
                "UPDATE orders SET state = $4, updated_at = $5 \
                 WHERE id = $1 AND user_id = $2 AND state = ANY($3)",
                &[&id, &user, &from, &to.as_str(), &now],
            )
            .await?;
        if moved == 0 {
            let current = tx
                .query_opt(
                    "SELECT state FROM orders WHERE id = $1 AND user_id = $2",
                    &[&id, &user],
                )
                .await?;
            return Err(match current {
                None => ShopError::NotFound("order not found"),
                Some(row) => ShopError::conflict(format!(
                    "an order that is {} cannot be {}",
                    row.get::<_, String>(0),
                    action.verb()
                )),
            });
        }
        if action == OrderAction::Cancel {
            tx.execute(
                "UPDATE products p SET stock = p.stock + l.quantity, updated_at = $2 \
                 FROM order_lines l WHERE l.order_id = $1 AND p.id = l.product_id",
                &[&id, &now],
            )
            .await?;
        }
        let row = tx
            .query_one(
                "SELECT id, state, total_minor, created_at, updated_at FROM orders WHERE id = $1",
                &[&id],
            )
            .await?;
        let order = self.with_lines_tx(&tx, row).await?;
        let body = serde_json::to_string(&order).expect("serialisable");
        if let Some(idempotency) = idempotency {
            Self::remember(&tx, user, idempotency, &body).await?;
        }
        db::commit(&self.pool, tx).await?;
        Ok((body, false))
    }

    async fn with_lines_tx(&self, tx: &Transaction<'_>, row: Row) -> Result<Order, DbError> {
        let id: i64 = row.get(0);
        let lines = tx
            .query(
                "SELECT product_id, name, price_minor, quantity FROM order_lines \
                 WHERE order_id = $1 ORDER BY product_id",
                &[&id],
            )
            .await?
            .iter()
            .map(|line| OrderLine {
                product_id: line.get(0),
                name: line.get(1),
                price_minor: line.get(2),
                quantity: line.get(3),
            })
            .collect();
        Ok(Order {
            id,
            state: OrderState::parse(row.get(1)).map_or("unknown", OrderState::as_str),
            total_minor: row.get(2),
            lines,
            created_at: rfc3339(row.get(3)),
            updated_at: rfc3339(row.get(4)),
        })
    }
}

/// The reply to every cart change: its lines, by product id.
pub fn cart_body(lines: &[CartLine]) -> String {
    #[derive(Serialize)]
    struct Body<'a> {
        items: &'a [CartLine],
    }
    serde_json::to_string(&Body { items: lines }).expect("serialisable")
}
