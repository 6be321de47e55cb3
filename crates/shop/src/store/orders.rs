//! Orders: checkout takes the stock all or nothing; then their life from created to
//! shipped or cancelled.

use agora_platform::db::{self, DbError, Lease};
use deadpool_postgres::Transaction;
use serde::Serialize;
use time::OffsetDateTime;
use tokio_postgres::Row;

use crate::domain::{OrderAction, OrderState, Page};
use crate::error::ShopError;
use crate::store::CartLine;

use super::{Claim, Idempotency, Store, rfc3339};

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

impl Store {
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
