//! SQL, and nothing else. Every id and timestamp is a parameter (see the migration: pgpool-II
//! runs each write on every backend).

mod carts;
mod catalog;
mod customers;
mod orders;

pub use carts::{CartLine, cart_body};
pub use catalog::Product;
pub use customers::Customer;
pub use orders::{Order, OrderLine};

use agora_platform::db::DbPool;
use deadpool_postgres::Transaction;
use time::OffsetDateTime;

use crate::error::ShopError;

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
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
}
