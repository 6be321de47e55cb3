//! Users: sign-up, profiles, password hashes, and the name-prefix search.

use agora_platform::db::{self, Connection, DbError};
use agora_platform::replicas::Freshness;

use crate::domain::{NameSearch, NewUser, SEARCH_RESULT_CAP};

use super::{SearchOrder, Store, UserRecord};

const USER_COLUMNS: &str = "id, first_name, second_name, birthdate, biography, city";

/// The surname prefix `$1` and the first-name prefix `$2` as byte-wise ranges (see
/// `Store::search_users`).
const BOTH_PREFIXES: &str = "lower(second_name) ~>=~ lower($1) \
     AND lower(second_name) ~<~ (lower($1) || chr(1114111)) \
     AND lower(first_name) ~>=~ lower($2) \
     AND lower(first_name) ~<~ (lower($2) || chr(1114111))";

impl Store {
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
        let id = row.get(0);
        self.db.written(&db, id).await;
        Ok(id)
    }

    pub async fn user(&self, id: i64, fresh: Freshness) -> Result<Option<UserRecord>, DbError> {
        self.db
            .read_found(fresh, |db| async move {
                let statement = db
                    .prepare_cached(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
                    .await?;
                Ok(db
                    .query_opt(&statement, &[&id])
                    .await?
                    .as_ref()
                    .map(UserRecord::from))
            })
            .await
    }

    /// The users among `ids` that exist, in no particular order.
    pub async fn users_by_ids(
        &self,
        ids: &[i64],
        fresh: Freshness,
    ) -> Result<Vec<UserRecord>, DbError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.db
            .read(fresh, |db| async move {
                let statement = db
                    .prepare_cached(&format!(
                        "SELECT {USER_COLUMNS} FROM users WHERE id = ANY($1)"
                    ))
                    .await?;
                Ok(db
                    .query(&statement, &[&ids])
                    .await?
                    .iter()
                    .map(UserRecord::from)
                    .collect())
            })
            .await
    }

    pub async fn password_hash(&self, id: i64) -> Result<Option<String>, DbError> {
        Ok(db::query_opt(
            &self.pool,
            "SELECT password_hash FROM users WHERE id = $1",
            &[&id],
        )
        .await?
        .map(|row| row.get(0)))
    }

    pub async fn search_users(
        &self,
        search: &NameSearch,
        fresh: Freshness,
    ) -> Result<Vec<UserRecord>, DbError> {
        self.db
            .read(fresh, |db| async move {
                self.search_users_on(&db, search).await
            })
            .await
    }

    async fn search_users_on(
        &self,
        db: &Connection,
        search: &NameSearch,
    ) -> Result<Vec<UserRecord>, DbError> {
        // lower() of the input here, not in Rust, so both sides use PostgreSQL's case mapping.
        //
        // A prefix is a byte-wise range (`~>=~`, `~<~`, the operators of the indexes'
        // text_pattern_ops): `prefix <= name < prefix || U+10FFFF`, the highest code point. That
        // is exactly "name starts with prefix" (but for a name holding U+10FFFF right after the
        // prefix), with `%` and `_` literal, and it is an index condition even in a generic plan,
        // where the prefix is an unknown parameter. `LIKE $1` is not, and PostgreSQL switches a
        // prepared statement to its generic plan after five runs, which then seq-scans a million
        // rows (docs/benchmarks/user-search.md ran into that).
        //
        // Results come in the index's order (surname, then first name, byte-wise), so the scan
        // stops at the 100th row instead of reading and sorting every match of a short prefix.
        // A LIKE beside the range would be redundant, and PostgreSQL would count its selectivity
        // twice, estimate one matching row, and sort after all. A search without a surname
        // prefix is served by the index that leads with the first name.
        let rows = match self.search_order {
            SearchOrder::Name if search.second_name_prefix.is_empty() => {
                let statement = db
                    .prepare_cached(&format!(
                        "SELECT {USER_COLUMNS} FROM users \
                         WHERE lower(first_name) ~>=~ lower($1) \
                           AND lower(first_name) ~<~ (lower($1) || chr(1114111)) \
                         ORDER BY lower(first_name) USING ~<~, lower(second_name) USING ~<~ \
                         LIMIT $2"
                    ))
                    .await?;
                db.query(&statement, &[&search.first_name_prefix, &SEARCH_RESULT_CAP])
                    .await?
            }
            SearchOrder::Name => {
                let statement = db
                    .prepare_cached(&format!(
                        "SELECT {USER_COLUMNS} FROM users WHERE {BOTH_PREFIXES} \
                         ORDER BY lower(second_name) USING ~<~, lower(first_name) USING ~<~ \
                         LIMIT $3"
                    ))
                    .await?;
                db.query(
                    &statement,
                    &[
                        &search.second_name_prefix,
                        &search.first_name_prefix,
                        &SEARCH_RESULT_CAP,
                    ],
                )
                .await?
            }
            // The statement as it was before index order, kept for the search study.
            SearchOrder::Id => {
                let statement = db
                    .prepare_cached(&format!(
                        "SELECT {USER_COLUMNS} FROM users WHERE {BOTH_PREFIXES} \
                           AND lower(second_name) LIKE lower($3) AND lower(first_name) LIKE lower($4) \
                         ORDER BY id LIMIT $5"
                    ))
                    .await?;
                db.query(
                    &statement,
                    &[
                        &search.second_name_prefix,
                        &search.first_name_prefix,
                        &search.second_name_pattern,
                        &search.first_name_pattern,
                        &SEARCH_RESULT_CAP,
                    ],
                )
                .await?
            }
        };
        Ok(rows.iter().map(UserRecord::from).collect())
    }

    pub async fn user_exists(&self, id: i64) -> Result<bool, DbError> {
        Ok(
            db::query_opt(&self.pool, "SELECT 1 FROM users WHERE id = $1", &[&id])
                .await?
                .is_some(),
        )
    }
}
