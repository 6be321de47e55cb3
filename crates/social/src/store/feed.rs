//! The reads a feed is built from.

use agora_platform::db::{self, DbError};
use agora_platform::replicas::Freshness;

use super::{PostRecord, Store};

/// Feed queries. Each friend contributes at most the rows a page can use (LATERAL ... LIMIT),
/// so a friend with a million posts costs no more than one with a thousand.
impl Store {
    /// The newest `limit` post ids of the user's friends, leaving out `excluded` authors (the
    /// celebrities, whose posts are merged at read time instead).
    pub async fn feed_ids(
        &self,
        user_id: i64,
        limit: i64,
        excluded: &[i64],
        fresh: Freshness,
    ) -> Result<Vec<i64>, DbError> {
        self.db
            .read(fresh, |db| async move {
                let statement = db
                    .prepare_cached(
                        "SELECT p.id FROM friendships f CROSS JOIN LATERAL \
                           (SELECT id FROM posts WHERE author_id = f.friend_id ORDER BY id DESC LIMIT $2) p \
                         WHERE f.user_id = $1 AND f.friend_id <> ALL($3) ORDER BY p.id DESC LIMIT $2",
                    )
                    .await?;
                let rows = db.query(&statement, &[&user_id, &limit, &excluded]).await?;
                Ok(rows.iter().map(|row| row.get(0)).collect())
            })
            .await
    }

    /// Friends' posts with ids below `before`, newest first, skipping `skip`.
    pub async fn feed_posts_before(
        &self,
        user_id: i64,
        before: i64,
        skip: i64,
        limit: i64,
        fresh: Freshness,
    ) -> Result<Vec<PostRecord>, DbError> {
        self.db
            .read(fresh, |db| async move {
                let statement = db
                    .prepare_cached(
                        "SELECT p.id, p.author_id, p.text FROM friendships f CROSS JOIN LATERAL \
                           (SELECT id, author_id, text FROM posts \
                            WHERE author_id = f.friend_id AND id < $2 ORDER BY id DESC LIMIT $3::bigint + $4::bigint) p \
                         WHERE f.user_id = $1 ORDER BY p.id DESC OFFSET $3 LIMIT $4",
                    )
                    .await?;
                let rows = db
                    .query(&statement, &[&user_id, &before, &skip, &limit])
                    .await?;
                Ok(rows.iter().map(PostRecord::from_row).collect())
            })
            .await
    }

    /// An author's posts with ids below `before`, newest first (`posts_author_id_idx`).
    pub async fn author_posts_before(
        &self,
        author_id: i64,
        before: i64,
        limit: i64,
        fresh: Freshness,
    ) -> Result<Vec<PostRecord>, DbError> {
        self.db
            .read(fresh, |db| async move {
                let statement = db
                    .prepare_cached(
                        "SELECT id, author_id, text FROM posts \
                         WHERE author_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
                    )
                    .await?;
                let rows = db.query(&statement, &[&author_id, &before, &limit]).await?;
                Ok(rows.iter().map(PostRecord::from_row).collect())
            })
            .await
    }

    pub async fn posts_by_ids(&self, ids: &[i64]) -> Result<Vec<PostRecord>, DbError> {
        let rows = db::query(
            &self.pool,
            "SELECT id, author_id, text FROM posts WHERE id = ANY($1)",
            &[&ids],
        )
        .await?;
        Ok(rows.iter().map(PostRecord::from_row).collect())
    }

    /// An author's newest `limit` post ids.
    pub async fn author_post_ids(&self, author_id: i64, limit: i64) -> Result<Vec<i64>, DbError> {
        db::query_column(
            &self.pool,
            "SELECT id FROM posts WHERE author_id = $1 ORDER BY id DESC LIMIT $2",
            &[&author_id, &limit],
        )
        .await
    }

    /// Ids of friends' posts newer than `since`: the newest `limit` of them, oldest first
    /// (what a reconnecting live client missed; bodies are fetched in pages).
    pub async fn feed_ids_after(
        &self,
        user_id: i64,
        since: i64,
        limit: i64,
    ) -> Result<Vec<i64>, DbError> {
        let mut ids: Vec<i64> = db::query_column(
            &self.pool,
            "SELECT p.id FROM friendships f CROSS JOIN LATERAL \
                   (SELECT id FROM posts WHERE author_id = f.friend_id AND id > $2 \
                    ORDER BY id DESC LIMIT $3) p \
                 WHERE f.user_id = $1 ORDER BY p.id DESC LIMIT $3",
            &[&user_id, &since, &limit],
        )
        .await?;
        ids.reverse();
        Ok(ids)
    }
}
