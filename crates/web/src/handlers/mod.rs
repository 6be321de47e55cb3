//! Routes and thin handlers: read the request, call the social network or dialogs, pick a page.
//! Every form that changes something carries the viewer's CSRF token and answers with a
//! redirect (303), so a reload never sends it twice.

mod account;
mod extract;
mod home;
mod messages;
mod people;
mod posts;

use std::collections::HashMap;

use agora_platform::ids::{self, IdParts};
use agora_social::domain::{self};
use askama::Template;
use axum::Router;
use axum::extract::Query;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::Web;
use crate::assets;
use crate::error::WebError;
use crate::headers::page_headers;
use crate::pages::*;
use crate::session::Viewer;
pub(crate) use extract::{CsrfProtected, FormData, IdPath, SignedInForm, ViewerForm};

pub(super) const FEED_PAGE: usize = 20;
pub(super) const POSTS_PAGE: i64 = 20;
pub(super) const SEARCH_PAGE: usize = 20;
pub(super) const DIALOG_PAGE: i64 = 30;
pub(super) const DIALOGS_LISTED: i64 = 50;
/// How far before the newest post it has the live feed asks to be replayed from: a post may
/// be committed this long after a newer one (a slow transaction), and would otherwise be
/// skipped on a reconnect.
pub(super) const LIVE_LOOK_BACK_MS: i64 = 30_000;

pub(super) fn live_look_back() -> i64 {
    ids::compose(IdParts {
        unix_ms: ids::EPOCH_UNIX_MS + LIVE_LOOK_BACK_MS,
        shard: 0,
        sequence: 0,
    })
}

pub fn router(web: Web) -> Router {
    Router::new()
        .route("/", get(home::home))
        .route("/signup", get(account::signup_form).post(account::signup))
        .route("/signin", get(account::signin_form).post(account::signin))
        .route("/signout", post(account::signout))
        .route("/posts", post(home::create_post))
        .route("/posts/{id}", get(posts::post_page))
        .route("/posts/{id}/edit", post(posts::edit_post))
        .route("/posts/{id}/delete", post(posts::delete_post))
        .route("/people", get(people::search))
        .route("/people/{id}", get(people::user_page))
        .route("/people/{id}/friend", post(people::befriend))
        .route("/people/{id}/unfriend", post(people::unfriend))
        .route("/messages", get(messages::messages))
        .route(
            "/messages/{id}",
            get(messages::dialog).post(messages::send_message),
        )
        .route("/assets/{name}", get(asset))
        .layer(middleware::from_fn(crate::context::scope))
        .layer(middleware::map_response(with_page_headers))
        .with_state(web)
}

pub(super) async fn with_page_headers(mut response: Response) -> Response {
    page_headers(response.headers_mut());
    response
}

pub(super) fn render(
    status: StatusCode,
    viewer: &Viewer,
    page: impl Template,
) -> Result<Response, WebError> {
    Ok(viewer.finish((status, Html(page.render()?)).into_response()))
}

/// `GET /assets/{name}`.
async fn asset(
    axum::extract::Path(name): axum::extract::Path<String>,
    headers: HeaderMap,
) -> Response {
    assets::response(&name, &headers)
        .unwrap_or_else(|| crate::error::status_page(StatusCode::NOT_FOUND))
}

pub(super) fn see_other(target: &str) -> Response {
    Redirect::to(target).into_response()
}

/// Query parameters read leniently: a person edits URLs by hand, and an odd parameter should
/// give a sensible page rather than an error.
pub(super) type Params = Query<HashMap<String, String>>;

pub(super) fn number_param(params: &HashMap<String, String>, name: &str) -> Option<i64> {
    params
        .get(name)
        .and_then(|value| value.parse::<i64>().ok())
        .filter(|value| *value > 0)
}

pub(super) fn page_param(params: &HashMap<String, String>) -> usize {
    number_param(params, "page").map_or(1, |page| page as usize)
}

#[derive(Deserialize)]
pub(super) struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

#[derive(Deserialize)]
pub(super) struct TextForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    text: String,
}

impl CsrfProtected for CsrfOnly {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

impl CsrfProtected for TextForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// A form's text sent back with why it was refused, the domain's message worded for the form.
pub(super) fn refused_text(text: String, message: &str, label: &str) -> Field {
    Field {
        value: text,
        error: Some(sentence(message, &["text"], label)),
    }
}

pub(super) fn dialogs_enabled(web: &Web) -> bool {
    web.dialogs().is_some()
}

pub(super) fn chrome(web: &Web, title: impl Into<String>, viewer: &Viewer) -> Chrome {
    Chrome::new(title, viewer.me_link(), &viewer.csrf, dialogs_enabled(web))
}

pub(super) fn full_name(user: &agora_social::rules::User) -> String {
    format!("{} {}", user.first_name, user.second_name)
}

pub(super) fn profile(user: &agora_social::rules::User) -> Profile {
    Profile {
        id: user.id,
        name: full_name(user),
        birthdate: user.birthdate.map(domain::format_date),
        city: user.city.clone(),
        biography: user.biography.clone(),
    }
}

/// Posts with their authors' names, in the order given.
pub(super) async fn with_authors(
    web: &Web,
    posts: Vec<(i64, i64, String)>,
    reader: Option<i64>,
) -> Result<Vec<PostView>, WebError> {
    let mut author_ids: Vec<i64> = posts.iter().map(|(_, author, _)| *author).collect();
    author_ids.sort_unstable();
    author_ids.dedup();
    let names: HashMap<i64, String> = web
        .profiles()
        .many(web.social(), &author_ids, reader)
        .await?
        .into_iter()
        .map(|(id, user)| (id, full_name(&user)))
        .collect();
    Ok(posts
        .into_iter()
        .map(|(id, author_id, text)| PostView {
            id,
            author_id,
            author: names
                .get(&author_id)
                .cloned()
                .unwrap_or_else(|| format!("user {author_id}")),
            text,
        })
        .collect())
}

/// A domain message ("first_name is required") worded for a form ("First name is required").
pub(super) fn sentence(message: &str, fields: &[&str], label: &str) -> String {
    for field in fields {
        if let Some(rest) = message.strip_prefix(field) {
            return format!("{label}{rest}.");
        }
    }
    let mut text = message.to_owned();
    if let Some(first) = text.get(0..1) {
        text.replace_range(0..1, &first.to_uppercase());
    }
    format!("{text}.")
}
