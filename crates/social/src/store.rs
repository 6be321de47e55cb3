//! SQL, and nothing else. Statements are prepared once per connection (`prepare_cached`).

use std::time::Duration;

use agora_platform::db::{Connection, DbError, DbPool};
use time::Date;
use tokio_postgres::Row;

use crate::domain::{NameSearch, NewUser, SEARCH_RESULT_CAP};

#[derive(Debug, Clone)]
pub struct UserRecord {
    pub id: i64,
    pub first_name: String,
    pub second_name: String,
    pub birthdate: Option<Date>,
    pub biography: Option<String>,
    pub city: Option<String>,
}

impl From<&Row> for UserRecord {
    fn from(row: &Row) -> Self {
        Self {
            id: row.get("id"),
            first_name: row.get("first_name"),
            second_name: row.get("second_name"),
            birthdate: row.get("birthdate"),
            biography: row.get("biography"),
            city: row.get("city"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct PostRecord {
    pub id: i64,
    pub author_id: i64,
    pub text: String,
}

/// What a conditional change found.
pub enum Ownership {
    Changed,
    NotFound,
    NotOwner,
}

const USER_COLUMNS: &str = "id, first_name, second_name, birthdate, biography, city";

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

    pub async fn insert_user(&self, user: &NewUser, password_hash: &str) -> Result<i64, DbError> {
        let db = self.pool.get().await?;
        let statement = db
            .prepare_cached(
                "INSERT INTO users (first_name, second_name, birthdate, biography, city, password_hash) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            )
            .await?;
        let row = db
            .query_one(
                &statement,
                &[
                    &user.first_name,
                    &user.second_name,
                    &user.birthdate,
                    &user.biography,
                    &user.city,
                    &password_hash,
                ],
            )
            .await?;
        Ok(row.get(0))
    }

    pub async fn user(&self, id: i64) -> Result<Option<UserRecord>, DbError> {
        let db = self.pool.get().await?;
        let statement = db
            .prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .await?;
        Ok(db
            .query_opt(&statement, &[&id])
            .await?
            .as_ref()
            .map(UserRecord::from))
    }

    pub async fn password_hash(&self, id: i64) -> Result<Option<String>, DbError> {
        let db = self.pool.get().await?;
        let statement = db
            .prepare_cached("SELECT password_hash FROM users WHERE id = $1")
            .await?;
        Ok(db
            .query_opt(&statement, &[&id])
            .await?
            .map(|row| row.get(0)))
    }

    pub async fn search_users(&self, search: &NameSearch) -> Result<Vec<UserRecord>, DbError> {
        let db = self.pool.get().await?;
        // lower() of the input here, not in Rust, so both sides use PostgreSQL's case mapping.
        //
        // The prefix is stated twice. As a byte-wise range (`~>=~`, `~<~`, the operators of the
        // index's text_pattern_ops) it is an index condition even in a generic plan, where the
        // prefix is an unknown parameter; `LIKE $1` alone is not, and PostgreSQL switches a
        // prepared statement to its generic plan after five runs, which then seq-scans a
        // million rows (docs/benchmarks/user-search.md ran into that). U+10FFFF, the highest
        // code point, closes the range. The LIKE keeps the match exact.
        let statement = db
            .prepare_cached(&format!(
                "SELECT {USER_COLUMNS} FROM users \
                 WHERE lower(second_name) ~>=~ lower($1) \
                   AND lower(second_name) ~<~ (lower($1) || chr(1114111)) \
                   AND lower(first_name) ~>=~ lower($2) \
                   AND lower(first_name) ~<~ (lower($2) || chr(1114111)) \
                   AND lower(second_name) LIKE lower($3) AND lower(first_name) LIKE lower($4) \
                 ORDER BY id LIMIT $5"
            ))
            .await?;
        let rows = db
            .query(
                &statement,
                &[
                    &search.second_name_prefix,
                    &search.first_name_prefix,
                    &search.second_name_pattern,
                    &search.first_name_pattern,
                    &SEARCH_RESULT_CAP,
                ],
            )
            .await?;
        Ok(rows.iter().map(UserRecord::from).collect())
    }

    pub async fn create_session(
        &self,
        user_id: i64,
        token_hash: &[u8],
        ttl: Duration,
    ) -> Result<(), DbError> {
        let db = self.pool.get().await?;
        let ttl_secs = ttl.as_secs_f64();
        // Expired sessions of this user go at the same time, so the table cannot grow without
        // bound for users who log in often.
        let statement = db
            .prepare_cached(
                "WITH expired AS (DELETE FROM sessions WHERE user_id = $1 AND expires_at <= now()) \
                 INSERT INTO sessions (token_hash, user_id, expires_at) \
                 VALUES ($2, $1, now() + make_interval(secs => $3))",
            )
            .await?;
        db.execute(&statement, &[&user_id, &token_hash, &ttl_secs])
            .await?;
        Ok(())
    }

    pub async fn session_user(&self, token_hash: &[u8]) -> Result<Option<i64>, DbError> {
        let db = self.pool.get().await?;
        let statement = db
            .prepare_cached(
                "SELECT user_id FROM sessions WHERE token_hash = $1 AND expires_at > now()",
            )
            .await?;
        Ok(db
            .query_opt(&statement, &[&token_hash])
            .await?
            .map(|row| row.get(0)))
    }

    /// Idempotent. `Ok(false)` when `friend_id` does not exist.
    pub async fn add_friend(&self, user_id: i64, friend_id: i64) -> Result<bool, DbError> {
        let db = self.pool.get().await?;
        let statement = db
            .prepare_cached(
                "INSERT INTO friendships (user_id, friend_id) VALUES ($1, $2) \
                 ON CONFLICT ON CONSTRAINT friendships_pkey DO NOTHING",
            )
            .await?;
        match db
            .execute(&statement, &[&user_id, &friend_id])
            .await
            .map_err(DbError::from)
        {
            Ok(_) => Ok(true),
            Err(error) if error.violated_constraint() == Some("friendships_friend_id_fkey") => {
                Ok(false)
            }
            Err(error) => Err(error),
        }
    }

    pub async fn remove_friend(&self, user_id: i64, friend_id: i64) -> Result<(), DbError> {
        let db = self.pool.get().await?;
        let statement = db
            .prepare_cached("DELETE FROM friendships WHERE user_id = $1 AND friend_id = $2")
            .await?;
        db.execute(&statement, &[&user_id, &friend_id]).await?;
        Ok(())
    }

    pub async fn user_exists(&self, id: i64) -> Result<bool, DbError> {
        let db = self.pool.get().await?;
        let statement = db
            .prepare_cached("SELECT 1 FROM users WHERE id = $1")
            .await?;
        Ok(db.query_opt(&statement, &[&id]).await?.is_some())
    }

    pub async fn create_post(&self, author_id: i64, text: &str) -> Result<i64, DbError> {
        let db = self.pool.get().await?;
        let statement = db
            .prepare_cached("INSERT INTO posts (author_id, text) VALUES ($1, $2) RETURNING id")
            .await?;
        Ok(db.query_one(&statement, &[&author_id, &text]).await?.get(0))
    }

    pub async fn post(&self, id: i64) -> Result<Option<PostRecord>, DbError> {
        let db = self.pool.get().await?;
        let statement = db
            .prepare_cached("SELECT id, author_id, text FROM posts WHERE id = $1")
            .await?;
        Ok(db
            .query_opt(&statement, &[&id])
            .await?
            .map(|row| PostRecord {
                id: row.get(0),
                author_id: row.get(1),
                text: row.get(2),
            }))
    }

    pub async fn update_post(
        &self,
        author_id: i64,
        id: i64,
        text: &str,
    ) -> Result<Ownership, DbError> {
        let db = self.pool.get().await?;
        let statement = db
            .prepare_cached(
                "UPDATE posts SET text = $3, updated_at = now() WHERE id = $1 AND author_id = $2",
            )
            .await?;
        let changed = db.execute(&statement, &[&id, &author_id, &text]).await?;
        self.ownership(&db, changed, id).await
    }

    pub async fn delete_post(&self, author_id: i64, id: i64) -> Result<Ownership, DbError> {
        let db = self.pool.get().await?;
        let statement = db
            .prepare_cached("DELETE FROM posts WHERE id = $1 AND author_id = $2")
            .await?;
        let changed = db.execute(&statement, &[&id, &author_id]).await?;
        self.ownership(&db, changed, id).await
    }

    /// Tells "no such post" from "someone else's post" after a conditional change hit no row.
    async fn ownership(
        &self,
        db: &Connection,
        changed: u64,
        id: i64,
    ) -> Result<Ownership, DbError> {
        if changed > 0 {
            return Ok(Ownership::Changed);
        }
        let statement = db
            .prepare_cached("SELECT 1 FROM posts WHERE id = $1")
            .await?;
        Ok(if db.query_opt(&statement, &[&id]).await?.is_some() {
            Ownership::NotOwner
        } else {
            Ownership::NotFound
        })
    }
}
