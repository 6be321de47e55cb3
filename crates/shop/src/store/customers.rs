//! Customer records.

use agora_platform::db::{DbError, Lease};
use serde::Serialize;
use time::OffsetDateTime;
use tokio_postgres::Row;

use crate::domain::CustomerFields;

use super::{Store, rfc3339};

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

impl Store {
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
}
