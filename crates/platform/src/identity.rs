//! Who the users are, for every service. The `users` and `sessions` tables were created by
//! the social network's first migration (a landed migration is never edited), but the
//! platform owns them: sessions through [`crate::session`], the users' existence through
//! [`Directory`], so no other service reads `users` with SQL of its own. The social network
//! owns the profile it registers and edits (names, birthdate, biography, city) and the
//! password hashes of its logins.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::db::{DbError, DbPool};
use crate::ids::UserId;

/// Users a positive answer is remembered for: no API deletes a user.
const KEEP: Duration = Duration::from_secs(600);
/// Users remembered at most.
const CAPACITY: usize = 100_000;

/// The users of the main database. Cheap to clone.
#[derive(Clone)]
pub struct Directory {
    inner: Arc<Inner>,
}

struct Inner {
    pool: DbPool,
    /// Users seen to exist, and when: kept for a while instead of asking the main database on
    /// every send.
    known: Mutex<HashMap<UserId, Instant>>,
}

impl Directory {
    /// On `pool`, a pool of the main database.
    pub fn new(pool: DbPool) -> Self {
        Self {
            inner: Arc::new(Inner {
                pool,
                known: Mutex::default(),
            }),
        }
    }

    /// Whether `user` exists.
    pub async fn user_exists(&self, user: UserId) -> Result<bool, DbError> {
        let now = Instant::now();
        if let Some(seen) = self.inner.known.lock().expect("not poisoned").get(&user)
            && now.duration_since(*seen) < KEEP
        {
            return Ok(true);
        }
        let db = self.inner.pool.get().await?;
        let statement = db
            .prepare_cached("SELECT 1 FROM users WHERE id = $1")
            .await?;
        let exists = db.query_opt(&statement, &[&user.0]).await?.is_some();
        if exists {
            let mut known = self.inner.known.lock().expect("not poisoned");
            if known.len() >= CAPACITY {
                known.retain(|_, seen| now.duration_since(*seen) < KEEP);
                if known.len() >= CAPACITY {
                    known.clear();
                }
            }
            known.insert(user, now);
        }
        Ok(exists)
    }

    /// A user with a name and no password anyone can sign in with: for tests and tools (people
    /// register through the social network).
    pub async fn insert_user(
        &self,
        first_name: &str,
        second_name: &str,
    ) -> Result<UserId, DbError> {
        let db = self.inner.pool.get().await?;
        let statement = db
            .prepare_cached(
                "INSERT INTO users (first_name, second_name, password_hash) \
                 VALUES ($1, $2, 'not used') RETURNING id",
            )
            .await?;
        let row = db
            .query_one(&statement, &[&first_name, &second_name])
            .await?;
        Ok(UserId(row.get(0)))
    }
}
