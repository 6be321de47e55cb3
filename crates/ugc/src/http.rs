//! UGC's HTTP face (docs/ugc.md): thin handlers that parse, call [`Ugc`] and render. Reads of a
//! film's rating and reviews are public; with a valid token they also say what the caller
//! gave. A token that is present but invalid is still 401.

use agora_platform::db;
use agora_platform::http::{JsonBody, OpsEndpoints, PathParams, QueryParams};
use agora_platform::ids;
use agora_platform::service::Service;
use agora_platform::session::Authenticated;
use axum::extract::State;
use axum::routing::{get, put};
use axum::{Json, Router};

use crate::domain::{
    self, BookmarksQuery, Cursor, FilmId, RatingRequest, ReviewRequest, ReviewsQuery, VoteRequest,
};
use crate::error::UgcError;
use crate::rules::{Deleted, FilmRating, Page, Ugc};
use crate::store::{Bookmark, Review};

/// Every path UGC answers.
pub const PATHS: [&str; 6] = [
    "/ugc/films/{film_id}/rating",
    "/ugc/films/{film_id}/reviews",
    "/ugc/films/{film_id}/reviews/{author_id}",
    "/ugc/films/{film_id}/reviews/{author_id}/vote",
    "/ugc/bookmarks",
    "/ugc/bookmarks/{film_id}",
];

pub fn router(ugc: Ugc) -> Router {
    Router::new()
        .route(
            "/ugc/films/{film_id}/rating",
            get(film_rating).put(rate).delete(unrate),
        )
        .route("/ugc/films/{film_id}/reviews", get(reviews))
        .route(
            "/ugc/films/{film_id}/reviews/{author_id}",
            get(review).put(write_review).delete(delete_review),
        )
        .route(
            "/ugc/films/{film_id}/reviews/{author_id}/vote",
            put(vote).delete(withdraw_vote),
        )
        .route("/ugc/bookmarks", get(bookmarks))
        .route("/ugc/bookmarks/{film_id}", put(bookmark).delete(unbookmark))
        .with_state(ugc)
}

/// UGC as a service of the platform: its routes and its database's readiness.
pub fn service_of(ugc: Ugc) -> Service {
    let pool = ugc.store().pool().clone();
    let scrape_pool = pool.clone();
    let sessions = ugc.sessions().cache().clone();
    let ops = OpsEndpoints::default()
        .check("ugc_database", db::readiness_check(pool))
        .on_scrape(move || db::record_pool_metrics(&scrape_pool, "ugc"));
    Service::new("ugc", router(ugc), ops).background(move |stop| sessions.listen(stop))
}

fn author(text: &str) -> Result<i64, UgcError> {
    ids::parse(text).ok_or_else(|| UgcError::invalid("author_id must be a user id"))
}

fn viewer(caller: Option<Authenticated>) -> Option<i64> {
    caller.map(|caller| caller.user.0)
}

fn cursor(text: Option<String>) -> Result<Option<Cursor>, UgcError> {
    text.as_deref().map(Cursor::decode).transpose()
}

// --- ratings -----------------------------------------------------------------------------

async fn film_rating(
    State(ugc): State<Ugc>,
    caller: Option<Authenticated>,
    PathParams(film): PathParams<String>,
) -> Result<Json<FilmRating>, UgcError> {
    let film = FilmId::parse(&film)?;
    Ok(Json(ugc.film_rating(&film, viewer(caller)).await?))
}

async fn rate(
    State(ugc): State<Ugc>,
    caller: Authenticated,
    PathParams(film): PathParams<String>,
    JsonBody(request): JsonBody<RatingRequest>,
) -> Result<Json<FilmRating>, UgcError> {
    let film = FilmId::parse(&film)?;
    let score = domain::score(request.score)?;
    Ok(Json(ugc.rate(caller.user.0, &film, score).await?))
}

async fn unrate(
    State(ugc): State<Ugc>,
    caller: Authenticated,
    PathParams(film): PathParams<String>,
) -> Result<Json<FilmRating>, UgcError> {
    let film = FilmId::parse(&film)?;
    Ok(Json(ugc.unrate(caller.user.0, &film).await?))
}

// --- reviews -----------------------------------------------------------------------------

async fn reviews(
    State(ugc): State<Ugc>,
    caller: Option<Authenticated>,
    PathParams(film): PathParams<String>,
    QueryParams(query): QueryParams<ReviewsQuery>,
) -> Result<Json<Page<Review>>, UgcError> {
    let film = FilmId::parse(&film)?;
    let limit = domain::page_size(query.limit)?;
    let after = cursor(query.cursor)?;
    Ok(Json(
        ugc.reviews(&film, query.sort, after, limit, viewer(caller))
            .await?,
    ))
}

async fn review(
    State(ugc): State<Ugc>,
    caller: Option<Authenticated>,
    PathParams((film, author_id)): PathParams<(String, String)>,
) -> Result<Json<Review>, UgcError> {
    let film = FilmId::parse(&film)?;
    Ok(Json(
        ugc.review(&film, author(&author_id)?, viewer(caller))
            .await?,
    ))
}

async fn write_review(
    State(ugc): State<Ugc>,
    caller: Authenticated,
    PathParams((film, author_id)): PathParams<(String, String)>,
    JsonBody(request): JsonBody<ReviewRequest>,
) -> Result<Json<Review>, UgcError> {
    let film = FilmId::parse(&film)?;
    let author = author(&author_id)?;
    let fields = request.validate()?;
    Ok(Json(
        ugc.write_review(caller.user.0, &film, author, fields)
            .await?,
    ))
}

async fn delete_review(
    State(ugc): State<Ugc>,
    caller: Authenticated,
    PathParams((film, author_id)): PathParams<(String, String)>,
) -> Result<Json<Deleted>, UgcError> {
    let film = FilmId::parse(&film)?;
    Ok(Json(
        ugc.delete_review(caller.user.0, &film, author(&author_id)?)
            .await?,
    ))
}

async fn vote(
    State(ugc): State<Ugc>,
    caller: Authenticated,
    PathParams((film, author_id)): PathParams<(String, String)>,
    JsonBody(request): JsonBody<VoteRequest>,
) -> Result<Json<Review>, UgcError> {
    let film = FilmId::parse(&film)?;
    Ok(Json(
        ugc.vote(
            caller.user.0,
            &film,
            author(&author_id)?,
            Some(request.vote),
        )
        .await?,
    ))
}

async fn withdraw_vote(
    State(ugc): State<Ugc>,
    caller: Authenticated,
    PathParams((film, author_id)): PathParams<(String, String)>,
) -> Result<Json<Review>, UgcError> {
    let film = FilmId::parse(&film)?;
    Ok(Json(
        ugc.vote(caller.user.0, &film, author(&author_id)?, None)
            .await?,
    ))
}

// --- bookmarks ---------------------------------------------------------------------------

async fn bookmarks(
    State(ugc): State<Ugc>,
    caller: Authenticated,
    QueryParams(query): QueryParams<BookmarksQuery>,
) -> Result<Json<Page<Bookmark>>, UgcError> {
    let limit = domain::page_size(query.limit)?;
    let after = cursor(query.cursor)?;
    Ok(Json(ugc.bookmarks(caller.user.0, after, limit).await?))
}

async fn bookmark(
    State(ugc): State<Ugc>,
    caller: Authenticated,
    PathParams(film): PathParams<String>,
) -> Result<Json<Bookmark>, UgcError> {
    let film = FilmId::parse(&film)?;
    Ok(Json(ugc.bookmark(caller.user.0, &film).await?))
}

async fn unbookmark(
    State(ugc): State<Ugc>,
    caller: Authenticated,
    PathParams(film): PathParams<String>,
) -> Result<Json<Deleted>, UgcError> {
    let film = FilmId::parse(&film)?;
    Ok(Json(ugc.unbookmark(caller.user.0, &film).await?))
}
