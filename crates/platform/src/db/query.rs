//! One statement on a pooled connection, prepared once per connection: the shape most reads
//! and single-statement writes take.

use deadpool_postgres::Pool;
use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, ToSql};

use super::DbError;

/// A statement's parameters, as tokio-postgres takes them.
pub type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// Runs `sql` on a connection of `pool`, prepared once per connection: every row.
pub async fn query(pool: &Pool, sql: &str, params: Params<'_>) -> Result<Vec<Row>, DbError> {
    let db = pool.get().await?;
    let statement = db.prepare_cached(sql).await?;
    Ok(db.query(&statement, params).await?)
}

/// [`query`], keeping the first column of every row.
pub async fn query_column<T>(pool: &Pool, sql: &str, params: Params<'_>) -> Result<Vec<T>, DbError>
where
    T: for<'a> FromSql<'a>,
{
    Ok(query(pool, sql, params)
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect())
}

/// [`query`] for a statement that returns at most one row.
pub async fn query_opt(pool: &Pool, sql: &str, params: Params<'_>) -> Result<Option<Row>, DbError> {
    let db = pool.get().await?;
    let statement = db.prepare_cached(sql).await?;
    Ok(db.query_opt(&statement, params).await?)
}

/// [`query`] for a statement that returns exactly one row.
pub async fn query_one(pool: &Pool, sql: &str, params: Params<'_>) -> Result<Row, DbError> {
    let db = pool.get().await?;
    let statement = db.prepare_cached(sql).await?;
    Ok(db.query_one(&statement, params).await?)
}

/// Runs `sql` on a connection of `pool`, prepared once per connection: the rows it changed.
pub async fn execute(pool: &Pool, sql: &str, params: Params<'_>) -> Result<u64, DbError> {
    let db = pool.get().await?;
    let statement = db.prepare_cached(sql).await?;
    Ok(db.execute(&statement, params).await?)
}
