//! SQL, and nothing else.
//!
//! Counters stay exact because each one changes in the transaction of the row it counts, under
//! that row's lock: a rating's film totals with the rating, a review's likes with the vote.
//! Locks are always taken in one order (review, then rating, then the film's totals; review,
//! then vote) so that concurrent writers wait for each other instead of deadlocking.

use agora_platform::db::{self, DbError, DbPool, Lease};
use deadpool_postgres::Transaction;
use serde::Serialize;
use time::OffsetDateTime;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::domain::{Cursor, FilmId, ReviewFields, ReviewOrder, Vote};

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A film's ratings: their sum and count, and the caller's own score when known.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub sum: i64,
    pub votes: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Review {
    pub film_id: String,
    #[serde(serialize_with = "agora_platform::ids::as_text")]
    pub author_id: i64,
    pub text: String,
    pub score: i16,
    pub written_at: String,
    pub edited_at: Option<String>,
    pub likes: i32,
    pub dislikes: i32,
    /// The caller's vote on it, when the caller is known.
    pub my_vote: Option<Vote>,
    #[serde(skip)]
    pub cursor_at: OffsetDateTime,
}

impl Serialize for Vote {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(match self {
            Vote::Like => "like",
            Vote::Dislike => "dislike",
        })
    }
}

const REVIEW_COLUMNS: &str = "r.film_id::text, r.author_id, r.body, r.score, r.written_at, \
     r.edited_at, r.likes, r.dislikes, v.vote";

/// Joins the viewer's vote ($2, or NULL for nobody) as `v`.
const REVIEW_FROM: &str = "FROM reviews r LEFT JOIN review_votes v \
     ON v.film_id = r.film_id AND v.author_id = r.author_id AND v.voter_id = $2";

impl From<&Row> for Review {
    fn from(row: &Row) -> Self {
        let written_at: OffsetDateTime = row.get(4);
        Self {
            film_id: row.get(0),
            author_id: row.get(1),
            text: row.get(2),
            score: row.get(3),
            written_at: rfc3339(written_at),
            edited_at: row.get::<_, Option<OffsetDateTime>>(5).map(rfc3339),
            likes: row.get(6),
            dislikes: row.get(7),
            my_vote: row.get::<_, Option<i16>>(8).and_then(Vote::from_db),
            cursor_at: written_at,
        }
    }
}

impl Review {
    pub fn cursor(&self, order: ReviewOrder) -> Cursor {
        match order {
            ReviewOrder::Newest => Cursor::Newest {
                at: self.cursor_at,
                author: self.author_id,
            },
            ReviewOrder::Top => Cursor::Top {
                votes: i64::from(self.likes) - i64::from(self.dislikes),
                at: self.cursor_at,
                author: self.author_id,
            },
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Bookmark {
    pub film_id: String,
    pub added_at: String,
    #[serde(skip)]
    pub cursor_at: OffsetDateTime,
}

impl Bookmark {
    pub fn cursor(&self) -> Cursor {
        Cursor::Bookmark {
            at: self.cursor_at,
            film: self.film_id.clone(),
        }
    }
}

/// Statements prepared once per connection and kept (deadpool's statement cache), as the
/// reads' are: sent as text, each statement of a rating's transaction was parsed and planned
/// again every time, and took a round trip more.
trait Prepared {
    async fn run(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, DbError>;
    async fn row(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Row, DbError>;
    async fn maybe_row(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, DbError>;
}

macro_rules! prepared_for {
    ($client:ty) => {
        impl Prepared for $client {
            async fn run(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, DbError> {
                let statement = self.prepare_cached(sql).await?;
                Ok(self.execute(&statement, params).await?)
            }
            async fn row(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Row, DbError> {
                let statement = self.prepare_cached(sql).await?;
                Ok(self.query_one(&statement, params).await?)
            }
            async fn maybe_row(
                &self,
                sql: &str,
                params: &[&(dyn ToSql + Sync)],
            ) -> Result<Option<Row>, DbError> {
                let statement = self.prepare_cached(sql).await?;
                Ok(self.query_opt(&statement, params).await?)
            }
        }
    };
}

prepared_for!(Transaction<'_>);
prepared_for!(deadpool_postgres::ClientWrapper);

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

    // --- ratings ---------------------------------------------------------------------------

    /// Sets `user`'s score of `film` and returns the film's totals after it.
    pub async fn rate(
        &self,
        user: i64,
        film: &FilmId,
        score: i16,
        at: OffsetDateTime,
    ) -> Result<Totals, DbError> {
        // One statement (`ugc_rate`, migration V2), committed on its own.
        let db = Lease::get(&self.pool).await?;
        rate_in(&**db, user, film, score, at).await
    }

    /// Removes `user`'s score of `film`, if any; the film's totals after it.
    pub async fn unrate(&self, user: i64, film: &FilmId) -> Result<Totals, DbError> {
        let db = Lease::get(&self.pool).await?;
        let row = db
            .row(
                "SELECT o_sum, o_votes FROM ugc_unrate($1, $2::text::uuid)",
                &[&user, &film.as_str()],
            )
            .await?;
        Ok(Totals {
            sum: row.get(0),
            votes: row.get(1),
        })
    }

    /// A film's totals, and `viewer`'s score of it.
    pub async fn film_rating(
        &self,
        film: &FilmId,
        viewer: Option<i64>,
    ) -> Result<(Totals, Option<i16>), DbError> {
        let db = Lease::get(&self.pool).await?;
        let statement = db
            .prepare_cached(
                "SELECT (SELECT score_sum FROM film_ratings WHERE film_id = $1::text::uuid), \
                        (SELECT votes FROM film_ratings WHERE film_id = $1::text::uuid), \
                        (SELECT score FROM ratings WHERE user_id = $2 AND film_id = $1::text::uuid)",
            )
            .await?;
        let row = db.query_one(&statement, &[&film.as_str(), &viewer]).await?;
        Ok((
            Totals {
                sum: row.get::<_, Option<i64>>(0).unwrap_or(0),
                votes: row.get::<_, Option<i64>>(1).unwrap_or(0),
            },
            row.get(2),
        ))
    }

    // --- reviews ---------------------------------------------------------------------------

    /// Writes `author`'s review of `film` (a new one, or an edit that keeps its votes and
    /// first date), with its score as the author's rating of the film.
    pub async fn write_review(
        &self,
        author: i64,
        film: &FilmId,
        fields: &ReviewFields,
        at: OffsetDateTime,
    ) -> Result<Review, DbError> {
        let mut db = Lease::get(&self.pool).await?;
        let tx = db.transaction().await?;
        tx.run(
            "INSERT INTO reviews (film_id, author_id, body, score, written_at) \
             VALUES ($1::text::uuid, $2, $3, $4, $5) \
             ON CONFLICT (film_id, author_id) DO UPDATE \
             SET body = EXCLUDED.body, score = EXCLUDED.score, edited_at = EXCLUDED.written_at",
            &[&film.as_str(), &author, &fields.text, &fields.score, &at],
        )
        .await?;
        rate_in(&tx, author, film, fields.score, at).await?;
        let review = review_in(&tx, film, author, Some(author)).await?;
        db::commit(&self.pool, tx).await?;
        review.ok_or_else(|| DbError::Unavailable("the review vanished".into()))
    }

    /// Deletes `author`'s review of `film` (its votes go with it); whether there was one.
    pub async fn delete_review(&self, author: i64, film: &FilmId) -> Result<bool, DbError> {
        let db = Lease::get(&self.pool).await?;
        let deleted = db
            .run(
                "DELETE FROM reviews WHERE film_id = $1::text::uuid AND author_id = $2",
                &[&film.as_str(), &author],
            )
            .await?;
        Ok(deleted > 0)
    }

    pub async fn review(
        &self,
        film: &FilmId,
        author: i64,
        viewer: Option<i64>,
    ) -> Result<Option<Review>, DbError> {
        let db = Lease::get(&self.pool).await?;
        review_in(&**db, film, author, viewer).await
    }

    /// A page of a film's reviews in `order`, after `after`.
    pub async fn reviews(
        &self,
        film: &FilmId,
        order: ReviewOrder,
        after: Option<&Cursor>,
        limit: usize,
        viewer: Option<i64>,
    ) -> Result<Vec<Review>, DbError> {
        let db = Lease::get(&self.pool).await?;
        let limit = limit as i64;
        let rows = match (order, after) {
            (ReviewOrder::Newest, None) => {
                let statement = db
                    .prepare_cached(&format!(
                        "SELECT {REVIEW_COLUMNS} {REVIEW_FROM} WHERE r.film_id = $1::text::uuid \
                         ORDER BY r.written_at DESC, r.author_id DESC LIMIT $3"
                    ))
                    .await?;
                db.query(&statement, &[&film.as_str(), &viewer, &limit])
                    .await?
            }
            (ReviewOrder::Newest, Some(Cursor::Newest { at, author })) => {
                let statement = db
                    .prepare_cached(&format!(
                        "SELECT {REVIEW_COLUMNS} {REVIEW_FROM} WHERE r.film_id = $1::text::uuid \
                         AND (r.written_at, r.author_id) < ($4, $5) \
                         ORDER BY r.written_at DESC, r.author_id DESC LIMIT $3"
                    ))
                    .await?;
                db.query(&statement, &[&film.as_str(), &viewer, &limit, at, author])
                    .await?
            }
            (ReviewOrder::Top, None) => {
                let statement = db
                    .prepare_cached(&format!(
                        "SELECT {REVIEW_COLUMNS} {REVIEW_FROM} WHERE r.film_id = $1::text::uuid \
                         ORDER BY (r.likes - r.dislikes) DESC, r.written_at DESC, r.author_id DESC LIMIT $3"
                    ))
                    .await?;
                db.query(&statement, &[&film.as_str(), &viewer, &limit])
                    .await?
            }
            (ReviewOrder::Top, Some(Cursor::Top { votes, at, author })) => {
                let votes = *votes as i32;
                let statement = db
                    .prepare_cached(&format!(
                        "SELECT {REVIEW_COLUMNS} {REVIEW_FROM} WHERE r.film_id = $1::text::uuid \
                         AND ((r.likes - r.dislikes), r.written_at, r.author_id) < ($4, $5, $6) \
                         ORDER BY (r.likes - r.dislikes) DESC, r.written_at DESC, r.author_id DESC LIMIT $3"
                    ))
                    .await?;
                db.query(
                    &statement,
                    &[&film.as_str(), &viewer, &limit, &votes, at, author],
                )
                .await?
            }
            // The service refuses a cursor of another order before it gets here.
            _ => Vec::new(),
        };
        Ok(rows.iter().map(Review::from).collect())
    }

    /// Sets `voter`'s vote on a review and returns the review; None when there is no such review.
    pub async fn vote(
        &self,
        film: &FilmId,
        author: i64,
        voter: i64,
        vote: Option<Vote>,
        at: OffsetDateTime,
    ) -> Result<Option<Review>, DbError> {
        let mut db = Lease::get(&self.pool).await?;
        let tx = db.transaction().await?;
        // Every change of this review's votes holds its row: the old vote read below is the
        // one the counters include.
        let locked = tx
            .maybe_row(
                "SELECT 1 FROM reviews WHERE film_id = $1::text::uuid AND author_id = $2 FOR UPDATE",
                &[&film.as_str(), &author],
            )
            .await?;
        if locked.is_none() {
            return Ok(None);
        }
        let old: Option<i16> = tx
            .maybe_row(
                "SELECT vote FROM review_votes WHERE film_id = $1::text::uuid AND author_id = $2 AND voter_id = $3",
                &[&film.as_str(), &author, &voter],
            )
            .await?
            .map(|row| row.get(0));
        let new = vote.map(Vote::as_db);
        if old != new {
            match new {
                Some(value) => {
                    tx.run(
                        "INSERT INTO review_votes (film_id, author_id, voter_id, vote, voted_at) \
                         VALUES ($1::text::uuid, $2, $3, $4, $5) \
                         ON CONFLICT (film_id, author_id, voter_id) DO UPDATE \
                         SET vote = EXCLUDED.vote, voted_at = EXCLUDED.voted_at",
                        &[&film.as_str(), &author, &voter, &value, &at],
                    )
                    .await?;
                }
                None => {
                    tx.run(
                        "DELETE FROM review_votes WHERE film_id = $1::text::uuid AND author_id = $2 AND voter_id = $3",
                        &[&film.as_str(), &author, &voter],
                    )
                    .await?;
                }
            }
            let count = |value: Option<i16>, side: i16| i32::from(value == Some(side));
            let likes = count(new, 1) - count(old, 1);
            let dislikes = count(new, -1) - count(old, -1);
            tx.run(
                "UPDATE reviews SET likes = likes + $3, dislikes = dislikes + $4 \
                 WHERE film_id = $1::text::uuid AND author_id = $2",
                &[&film.as_str(), &author, &likes, &dislikes],
            )
            .await?;
        }
        let review = review_in(&tx, film, author, Some(voter)).await?;
        db::commit(&self.pool, tx).await?;
        Ok(review)
    }

    // --- bookmarks -------------------------------------------------------------------------

    /// Bookmarks `film` for `user` (again is a no-op that keeps the first date).
    pub async fn bookmark(
        &self,
        user: i64,
        film: &FilmId,
        at: OffsetDateTime,
    ) -> Result<Bookmark, DbError> {
        let db = Lease::get(&self.pool).await?;
        let statement = db
            .prepare_cached(
                "WITH added AS (INSERT INTO bookmarks VALUES ($1, $2::text::uuid, $3) \
                 ON CONFLICT DO NOTHING RETURNING added_at) \
                 SELECT added_at FROM added UNION ALL \
                 SELECT added_at FROM bookmarks WHERE user_id = $1 AND film_id = $2::text::uuid",
            )
            .await?;
        let rows = db.query(&statement, &[&user, &film.as_str(), &at]).await?;
        let added_at: OffsetDateTime = rows.first().map_or(at, |row| row.get(0));
        Ok(Bookmark {
            film_id: film.as_str().to_owned(),
            added_at: rfc3339(added_at),
            cursor_at: added_at,
        })
    }

    pub async fn unbookmark(&self, user: i64, film: &FilmId) -> Result<bool, DbError> {
        let db = Lease::get(&self.pool).await?;
        let deleted = db
            .run(
                "DELETE FROM bookmarks WHERE user_id = $1 AND film_id = $2::text::uuid",
                &[&user, &film.as_str()],
            )
            .await?;
        Ok(deleted > 0)
    }

    /// A page of `user`'s bookmarks, newest first, after `after`.
    pub async fn bookmarks(
        &self,
        user: i64,
        after: Option<&Cursor>,
        limit: usize,
    ) -> Result<Vec<Bookmark>, DbError> {
        let db = Lease::get(&self.pool).await?;
        let limit = limit as i64;
        let rows = match after {
            Some(Cursor::Bookmark { at, film }) => {
                let statement = db
                    .prepare_cached(
                        "SELECT film_id::text, added_at FROM bookmarks WHERE user_id = $1 \
                         AND (added_at, film_id) < ($3, $4::text::uuid) \
                         ORDER BY added_at DESC, film_id DESC LIMIT $2",
                    )
                    .await?;
                db.query(&statement, &[&user, &limit, at, film]).await?
            }
            _ => {
                let statement = db
                    .prepare_cached(
                        "SELECT film_id::text, added_at FROM bookmarks WHERE user_id = $1 \
                         ORDER BY added_at DESC, film_id DESC LIMIT $2",
                    )
                    .await?;
                db.query(&statement, &[&user, &limit]).await?
            }
        };
        Ok(rows
            .iter()
            .map(|row| {
                let added_at: OffsetDateTime = row.get(1);
                Bookmark {
                    film_id: row.get(0),
                    added_at: rfc3339(added_at),
                    cursor_at: added_at,
                }
            })
            .collect())
    }
}

/// Sets a score and the film's totals in one statement (`ugc_rate`, migration V2: the rules
/// are written there), in a transaction or on its own.
async fn rate_in(
    client: &impl Prepared,
    user: i64,
    film: &FilmId,
    score: i16,
    at: OffsetDateTime,
) -> Result<Totals, DbError> {
    let row = client
        .row(
            "SELECT o_sum, o_votes FROM ugc_rate($1, $2::text::uuid, $3, $4)",
            &[&user, &film.as_str(), &score, &at],
        )
        .await?;
    Ok(Totals {
        sum: row.get(0),
        votes: row.get(1),
    })
}

/// One review as `viewer` sees it, in a transaction or on a pooled connection.
async fn review_in(
    client: &impl Prepared,
    film: &FilmId,
    author: i64,
    viewer: Option<i64>,
) -> Result<Option<Review>, DbError> {
    let row = client
        .maybe_row(
            &format!(
                "SELECT {REVIEW_COLUMNS} {REVIEW_FROM} WHERE r.film_id = $1::text::uuid AND r.author_id = $3"
            ),
            &[&film.as_str(), &viewer, &author],
        )
        .await?;
    Ok(row.as_ref().map(Review::from))
}
