//! Carts kept in PostgreSQL (the Redis ones are `crate::carts`).

use agora_platform::db::{self, DbError, Lease};
use serde::Serialize;
use time::OffsetDateTime;

use crate::error::ShopError;

use super::{Claim, Idempotency, Store};

/// A cart line as stored: product and quantity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CartLine {
    #[serde(serialize_with = "agora_platform::ids::as_text")]
    pub product_id: i64,
    pub quantity: i32,
}

impl Store {
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
}

/// The reply to every cart change: its lines, by product id.
pub fn cart_body(lines: &[CartLine]) -> String {
    #[derive(Serialize)]
    struct Body<'a> {
        items: &'a [CartLine],
    }
    serde_json::to_string(&Body { items: lines }).expect("serialisable")
}
