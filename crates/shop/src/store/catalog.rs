//! The catalog: products, their stock and their sellers.

use agora_platform::db::{DbError, Lease};
use serde::Serialize;
use time::OffsetDateTime;
use tokio_postgres::Row;

use crate::domain::{Page, ProductFields};

use super::{Ownership, Store, rfc3339};

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

impl Store {
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
}
