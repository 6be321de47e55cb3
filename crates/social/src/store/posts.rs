//! Posts: create, read, edit, delete.

use agora_platform::db::{Connection, DbError};
use agora_platform::replicas::Freshness;

use super::friends::follow_clock_key;
use super::outbox::{FeedEventKind, append_outbox};
use super::{Ownership, PostRecord, Store};

impl Store {
    pub async fn create_post(&self, author_id: i64, text: &str) -> Result<i64, DbError> {
        let mut db = self.pool.get().await?;
        let tx = db.transaction().await?;
        // The shared lock orders this post against the author's friendship changes (not
        // against other posts); the outbox row then reads the tick in a later statement, so
        // it sees every change that committed before the lock was granted.
        let (high, low) = follow_clock_key(author_id);
        let statement = tx
            .prepare_cached(
                "INSERT INTO posts (author_id, text) \
                 SELECT $1, $2 FROM pg_advisory_xact_lock_shared($3, $4) RETURNING id",
            )
            .await?;
        let id: i64 = tx
            .query_one(&statement, &[&author_id, &text, &high, &low])
            .await?
            .get(0);
        let statement = tx
            .prepare_cached(
                "INSERT INTO feed_outbox (kind, actor_id, subject_id, tick) \
                 VALUES ('post_created', $1, $2, \
                         coalesce((SELECT tick FROM follow_clocks WHERE author_id = $1), 0))",
            )
            .await?;
        tx.execute(&statement, &[&author_id, &id]).await?;
        self.commit(tx).await?;
        self.db.written(&db, author_id).await;
        Ok(id)
    }

    pub async fn post(&self, id: i64, fresh: Freshness) -> Result<Option<PostRecord>, DbError> {
        self.db
            .read_found(fresh, |db| async move {
                let statement = db
                    .prepare_cached("SELECT id, author_id, text FROM posts WHERE id = $1")
                    .await?;
                Ok(db
                    .query_opt(&statement, &[&id])
                    .await?
                    .as_ref()
                    .map(PostRecord::from_row))
            })
            .await
    }

    pub async fn update_post(
        &self,
        author_id: i64,
        id: i64,
        text: &str,
    ) -> Result<(Ownership, i32), DbError> {
        let mut db = self.pool.get().await?;
        let tx = db.transaction().await?;
        let statement = tx
            .prepare_cached(
                "UPDATE posts SET text = $3, updated_at = now(), version = version + 1 \
                 WHERE id = $1 AND author_id = $2 RETURNING version",
            )
            .await?;
        let version: Option<i32> = tx
            .query_opt(&statement, &[&id, &author_id, &text])
            .await?
            .map(|row| row.get(0));
        if let Some(version) = version {
            let statement = tx
                .prepare_cached(
                    "INSERT INTO feed_outbox (kind, actor_id, subject_id, post_version) \
                     VALUES ('post_updated', $1, $2, $3)",
                )
                .await?;
            tx.execute(&statement, &[&author_id, &id, &version]).await?;
        }
        self.commit(tx).await?;
        if version.is_some() {
            self.db.written(&db, author_id).await;
        }
        let ownership = self
            .ownership(&db, u64::from(version.is_some()), id)
            .await?;
        Ok((ownership, version.unwrap_or(0)))
    }

    pub async fn delete_post(&self, author_id: i64, id: i64) -> Result<Ownership, DbError> {
        let mut db = self.pool.get().await?;
        let tx = db.transaction().await?;
        let statement = tx
            .prepare_cached("DELETE FROM posts WHERE id = $1 AND author_id = $2")
            .await?;
        let changed = tx.execute(&statement, &[&id, &author_id]).await?;
        if changed > 0 {
            append_outbox(&tx, FeedEventKind::PostDeleted, author_id, id, None).await?;
        }
        self.commit(tx).await?;
        if changed > 0 {
            self.db.written(&db, author_id).await;
        }
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
