//! A post's page, editing and deleting it.

use agora_social::domain::{self};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::{
    CsrfOnly, IdPath, Params, SignedInForm, TextForm, chrome, full_name, refused_text, render,
    see_other,
};
use crate::Web;
use crate::error::WebError;
use crate::pages::*;
use crate::session::Viewer;

pub(super) async fn post_page(
    State(web): State<Web>,
    viewer: Viewer,
    IdPath(id): IdPath,
    Query(params): Params,
) -> Result<Response, WebError> {
    let notice =
        (params.get("notice").map(String::as_str) == Some("saved")).then(|| "Saved.".to_owned());
    show_post(&web, &viewer, id, None, notice, StatusCode::OK).await
}

pub(super) async fn show_post(
    web: &Web,
    viewer: &Viewer,
    id: i64,
    draft: Option<Field>,
    notice: Option<String>,
    status: StatusCode,
) -> Result<Response, WebError> {
    let reader = viewer.me.as_ref().map(|me| me.id);
    let post = web.social().post(id, reader).await?;
    let author = web
        .profiles()
        .one(web.social(), post.author_id, reader)
        .await?;
    let page = PostPage {
        chrome: chrome(web, format!("Post by {}", full_name(&author)), viewer),
        mine: reader == Some(post.author_id),
        draft: draft.unwrap_or_else(|| Field::of(&post.text)),
        post: PostView {
            id: post.id,
            author_id: post.author_id,
            author: full_name(&author),
            text: post.text,
        },
        notice,
    };
    render(status, viewer, page)
}

pub(super) async fn edit_post(
    State(web): State<Web>,
    IdPath(id): IdPath,
    SignedInForm(viewer, me, form): SignedInForm<TextForm>,
) -> Result<Response, WebError> {
    let text = match domain::post_text(Some(form.text.clone())) {
        Ok(text) => text,
        Err(error) => {
            let draft = refused_text(form.text, &error.to_string(), "The text");
            return show_post(
                &web,
                &viewer,
                id,
                Some(draft),
                None,
                StatusCode::BAD_REQUEST,
            )
            .await;
        }
    };
    web.social().update_post(me.id, id, &text).await?;
    Ok(see_other(&format!("/posts/{id}?notice=saved")))
}

pub(super) async fn delete_post(
    State(web): State<Web>,
    IdPath(id): IdPath,
    SignedInForm(_, me, _): SignedInForm<CsrfOnly>,
) -> Result<Response, WebError> {
    web.social().delete_post(me.id, id).await?;
    Ok(see_other(&format!("/people/{}?notice=deleted", me.id)))
}
