//! UGC's rules, apart from HTTP: who may change what, what a page holds.
//!
//! Every write sets a state (a score, a vote, a bookmark, a review's text) rather than
//! adding to one, so a client that retries after a lost answer changes nothing twice: the
//! writes are idempotent without keys.

use std::sync::Arc;
use std::time::Duration;

use agora_platform::db::{self, Work};
use agora_platform::session::Sessions;
use serde::Serialize;
use time::OffsetDateTime;

use crate::domain::{Cursor, FilmId, ReviewFields, ReviewOrder, Vote};
use crate::error::UgcError;
use crate::store::{Bookmark, Review, Store, Totals};

/// A film's rating as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct FilmRating {
    pub film_id: String,
    /// The mean score, to two decimals; null before the first rating.
    pub average: Option<f64>,
    pub votes: i64,
    /// The caller's own score, when signed in and rated.
    pub my_score: Option<i16>,
}

impl FilmRating {
    fn new(film: &FilmId, totals: Totals, mine: Option<i16>) -> Self {
        Self {
            film_id: film.as_str().to_owned(),
            average: (totals.votes > 0)
                .then(|| (totals.sum as f64 / totals.votes as f64 * 100.0).round() / 100.0),
            votes: totals.votes,
            my_score: mine,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; null on the last one.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Deleted {
    pub deleted: bool,
}

#[derive(Clone)]
pub struct Ugc {
    inner: Arc<State>,
}

struct State {
    store: Store,
    sessions: Sessions,
    deadline: Duration,
}

impl axum::extract::FromRef<Ugc> for Sessions {
    fn from_ref(ugc: &Ugc) -> Sessions {
        ugc.inner.sessions.clone()
    }
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

impl Ugc {
    pub fn new(store: Store, sessions: Sessions, deadline: Duration) -> Self {
        Self {
            inner: Arc::new(State {
                store,
                sessions,
                deadline,
            }),
        }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn sessions(&self) -> &Sessions {
        &self.inner.sessions
    }

    /// A write transaction, repeated after a lost race or a dropped connection, bounded.
    async fn write<T, Fut>(&self, attempt: impl FnMut() -> Fut) -> Result<T, UgcError>
    where
        Fut: std::future::Future<Output = Result<T, UgcError>>,
    {
        db::write_retrying(self.inner.deadline, "ugc", attempt).await
    }

    /// A read, bounded.
    async fn read<T>(
        &self,
        read: impl std::future::Future<Output = Result<T, UgcError>>,
    ) -> Result<T, UgcError> {
        db::within(self.inner.deadline, Work::Read, read).await
    }

    // --- ratings ---------------------------------------------------------------------------

    pub async fn rate(&self, user: i64, film: &FilmId, score: i16) -> Result<FilmRating, UgcError> {
        let at = now();
        let totals = self
            .write(|| async { Ok(self.store().rate(user, film, score, at).await?) })
            .await?;
        Ok(FilmRating::new(film, totals, Some(score)))
    }

    pub async fn unrate(&self, user: i64, film: &FilmId) -> Result<FilmRating, UgcError> {
        let totals = self
            .write(|| async { Ok(self.store().unrate(user, film).await?) })
            .await?;
        Ok(FilmRating::new(film, totals, None))
    }

    pub async fn film_rating(
        &self,
        film: &FilmId,
        viewer: Option<i64>,
    ) -> Result<FilmRating, UgcError> {
        let (totals, mine) = self
            .read(async { Ok(self.store().film_rating(film, viewer).await?) })
            .await?;
        Ok(FilmRating::new(film, totals, mine))
    }

    // --- reviews ---------------------------------------------------------------------------

    /// Writes the caller's own review: `author` must be the caller.
    pub async fn write_review(
        &self,
        caller: i64,
        film: &FilmId,
        author: i64,
        fields: ReviewFields,
    ) -> Result<Review, UgcError> {
        if caller != author {
            return Err(UgcError::Forbidden("you can write only your own review"));
        }
        let at = now();
        self.write(|| async { Ok(self.store().write_review(author, film, &fields, at).await?) })
            .await
    }

    pub async fn delete_review(
        &self,
        caller: i64,
        film: &FilmId,
        author: i64,
    ) -> Result<Deleted, UgcError> {
        if caller != author {
            return Err(UgcError::Forbidden("you can delete only your own review"));
        }
        let deleted = self
            .write(|| async { Ok(self.store().delete_review(author, film).await?) })
            .await?;
        Ok(Deleted { deleted })
    }

    pub async fn review(
        &self,
        film: &FilmId,
        author: i64,
        viewer: Option<i64>,
    ) -> Result<Review, UgcError> {
        self.read(async { Ok(self.store().review(film, author, viewer).await?) })
            .await?
            .ok_or(UgcError::NotFound("no such review"))
    }

    pub async fn reviews(
        &self,
        film: &FilmId,
        order: ReviewOrder,
        cursor: Option<Cursor>,
        limit: usize,
        viewer: Option<i64>,
    ) -> Result<Page<Review>, UgcError> {
        let fits = matches!(
            (&cursor, order),
            (None, _)
                | (Some(Cursor::Newest { .. }), ReviewOrder::Newest)
                | (Some(Cursor::Top { .. }), ReviewOrder::Top)
        );
        if !fits {
            return Err(UgcError::invalid(
                "cursor belongs to another sort order; start again without it",
            ));
        }
        let items = self
            .read(async {
                Ok(self
                    .store()
                    .reviews(film, order, cursor.as_ref(), limit, viewer)
                    .await?)
            })
            .await?;
        let next_cursor = (items.len() == limit)
            .then(|| items.last().map(|review| review.cursor(order).encode()))
            .flatten();
        Ok(Page { items, next_cursor })
    }

    /// Sets (or with None withdraws) the caller's vote on another user's review.
    pub async fn vote(
        &self,
        voter: i64,
        film: &FilmId,
        author: i64,
        vote: Option<Vote>,
    ) -> Result<Review, UgcError> {
        if voter == author {
            return Err(UgcError::Forbidden("you cannot vote on your own review"));
        }
        let at = now();
        self.write(|| async { Ok(self.store().vote(film, author, voter, vote, at).await?) })
            .await?
            .ok_or(UgcError::NotFound("no such review"))
    }

    // --- bookmarks -------------------------------------------------------------------------

    pub async fn bookmark(&self, user: i64, film: &FilmId) -> Result<Bookmark, UgcError> {
        let at = now();
        self.write(|| async { Ok(self.store().bookmark(user, film, at).await?) })
            .await
    }

    pub async fn unbookmark(&self, user: i64, film: &FilmId) -> Result<Deleted, UgcError> {
        let deleted = self
            .write(|| async { Ok(self.store().unbookmark(user, film).await?) })
            .await?;
        Ok(Deleted { deleted })
    }

    pub async fn bookmarks(
        &self,
        user: i64,
        cursor: Option<Cursor>,
        limit: usize,
    ) -> Result<Page<Bookmark>, UgcError> {
        if !matches!(cursor, None | Some(Cursor::Bookmark { .. })) {
            return Err(UgcError::invalid("cursor is not one of a bookmarks page"));
        }
        let items = self
            .read(async { Ok(self.store().bookmarks(user, cursor.as_ref(), limit).await?) })
            .await?;
        let next_cursor = (items.len() == limit)
            .then(|| items.last().map(|bookmark| bookmark.cursor().encode()))
            .flatten();
        Ok(Page { items, next_cursor })
    }
}
