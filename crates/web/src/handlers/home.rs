//! The home page: the feed, and writing a post.

use agora_platform::ids::{self, IdParts};
use agora_social::domain::{self};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::{
    FEED_PAGE, Params, SignedInForm, TextForm, chrome, live_look_back, number_param, page_param,
    profile, refused_text, render, see_other, with_authors,
};
use crate::Web;
use crate::error::WebError;
use crate::pages::*;
use crate::session::{Me, SignedIn, Viewer};

pub(super) async fn home(
    State(web): State<Web>,
    SignedIn(viewer, me): SignedIn,
    Query(params): Params,
) -> Result<Response, WebError> {
    let posted = number_param(&params, "posted");
    home_page(
        &web,
        &viewer,
        &me,
        page_param(&params),
        Field::default(),
        posted,
        StatusCode::OK,
    )
    .await
}

pub(super) async fn home_page(
    web: &Web,
    viewer: &Viewer,
    me: &Me,
    page: usize,
    draft: Field,
    posted: Option<i64>,
    status: StatusCode,
) -> Result<Response, WebError> {
    let offset = (page - 1).saturating_mul(FEED_PAGE);
    if offset > domain::MAX_FEED_OFFSET {
        return Err(WebError::NotFound("the feed does not go back that far"));
    }
    let feed = web.social().feed_page(me.id, offset, FEED_PAGE).await?;
    let truncated = feed.truncated;
    let full = feed.posts.len() == FEED_PAGE || truncated;
    // Where the live feed resumes: the newest post shown, or now when there is none.
    let live_since = feed.posts.first().map_or_else(
        || {
            ids::compose(IdParts {
                unix_ms: time::OffsetDateTime::now_utc().unix_timestamp_nanos() as i64 / 1_000_000,
                shard: 0,
                sequence: 0,
            })
        },
        |post| post.id,
    );
    let posts = feed
        .posts
        .into_iter()
        .map(|post| (post.id, post.author_id, post.text))
        .collect();
    let feed = with_authors(web, posts, Some(me.id)).await?;
    let page_view = HomePage {
        chrome: chrome(web, "Home", viewer).with_live_script(),
        me: profile(&me.profile),
        draft,
        feed,
        page,
        newer: (page > 1).then(|| page - 1),
        older: (full && page * FEED_PAGE <= domain::MAX_FEED_OFFSET).then_some(page + 1),
        live_since: live_since.to_string(),
        live_look_back: live_look_back().to_string(),
        truncated,
        posted,
    };
    render(status, viewer, page_view)
}

pub(super) async fn create_post(
    State(web): State<Web>,
    SignedInForm(viewer, me, form): SignedInForm<TextForm>,
) -> Result<Response, WebError> {
    let text = match domain::post_text(Some(form.text.clone())) {
        Ok(text) => text,
        Err(error) => {
            let draft = refused_text(form.text, &error.to_string(), "Your post");
            return home_page(&web, &viewer, &me, 1, draft, None, StatusCode::BAD_REQUEST).await;
        }
    };
    let id = web.social().create_post(me.id, &text).await?;
    Ok(see_other(&format!("/?posted={id}")))
}
