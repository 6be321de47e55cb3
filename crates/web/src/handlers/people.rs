//! Finding people, their pages, and befriending them.

use agora_social::SocialError;
use agora_social::domain::{NameSearch, SEARCH_RESULT_CAP};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::{
    CsrfOnly, IdPath, POSTS_PAGE, Params, SEARCH_PAGE, SignedInForm, chrome, full_name,
    number_param, page_param, profile, render, see_other, sentence,
};
use crate::Web;
use crate::error::WebError;
use crate::pages::*;
use crate::session::Viewer;

pub(super) async fn search(
    State(web): State<Web>,
    viewer: Viewer,
    Query(params): Params,
) -> Result<Response, WebError> {
    let first = params.get("first_name").cloned();
    let last = params.get("last_name").cloned();
    let searched = first.is_some() || last.is_some();
    let mut page = SearchPage {
        chrome: chrome(&web, "People", &viewer),
        first_name: Field::of(first.as_deref().unwrap_or("")),
        last_name: Field::of(last.as_deref().unwrap_or("")),
        searched,
        results: Vec::new(),
        total: 0,
        first_shown: 0,
        page: page_param(&params),
        newer: None,
        older: None,
        capped: false,
        error: None,
    };
    if !searched {
        return render(StatusCode::OK, &viewer, page);
    }
    let query = NameSearch::parse(
        Some(first.unwrap_or_default()),
        Some(last.unwrap_or_default()),
    );
    let query = match query {
        Ok(query) => query,
        Err(SocialError::InvalidInput(message)) => {
            page.error = Some(if message.contains("both be empty") {
                "Type the start of a first name, a surname, or both.".to_owned()
            } else {
                sentence(
                    &message,
                    &["first_name", "last_name"],
                    if message.starts_with("first") {
                        "First name"
                    } else {
                        "Surname"
                    },
                )
            });
            return render(StatusCode::BAD_REQUEST, &viewer, page);
        }
        Err(error) => return Err(error.into()),
    };
    let reader = viewer.me.as_ref().map(|me| me.id);
    let found = web.social().search(&query, reader).await?;
    page.total = found.len();
    page.capped = found.len() as i64 >= SEARCH_RESULT_CAP;
    let pages = found.len().div_ceil(SEARCH_PAGE).max(1);
    page.page = page.page.min(pages);
    let start = (page.page - 1) * SEARCH_PAGE;
    page.first_shown = start + 1;
    page.newer = (page.page > 1).then(|| page.page - 1);
    page.older = (page.page < pages).then(|| page.page + 1);
    page.results = found
        .into_iter()
        .skip(start)
        .take(SEARCH_PAGE)
        .map(|user| Person {
            id: user.id,
            name: full_name(&user),
            city: user.city,
        })
        .collect();
    render(StatusCode::OK, &viewer, page)
}

pub(super) async fn user_page(
    State(web): State<Web>,
    viewer: Viewer,
    IdPath(id): IdPath,
    Query(params): Params,
) -> Result<Response, WebError> {
    let reader = viewer.me.as_ref().map(|me| me.id);
    let before = number_param(&params, "before");
    let following = async {
        match reader {
            Some(me) if me != id => web.social().is_friend(me, id).await.map(Some),
            Some(_) => Ok(Some(false)),
            None => Ok(None),
        }
    };
    let (user, mut posts, is_friend) = tokio::try_join!(
        web.profiles().one(web.social(), id, reader),
        web.social()
            .posts_by_author(id, before, POSTS_PAGE + 1, reader),
        following,
    )?;
    let older = (posts.len() as i64 > POSTS_PAGE).then(|| {
        posts.truncate(POSTS_PAGE as usize);
        posts.last().map(|post| post.id)
    });
    let name = full_name(&user);
    let posts = posts
        .into_iter()
        .map(|post| PostView {
            id: post.id,
            author_id: post.author_id,
            author: name.clone(),
            text: post.text,
        })
        .collect();
    let notice = match params.get("notice").map(String::as_str) {
        Some("befriended") => Some(format!(
            "You follow {name}: their posts appear in your feed."
        )),
        Some("unfriended") => Some(format!("You no longer follow {name}.")),
        Some("deleted") => Some("Your post was deleted.".to_owned()),
        _ => None,
    };
    let page = UserPage {
        chrome: chrome(&web, name, &viewer),
        is_me: reader == Some(id),
        user: profile(&user),
        is_friend,
        posts,
        older: older.flatten(),
        notice,
    };
    render(StatusCode::OK, &viewer, page)
}

pub(super) async fn befriend(
    State(web): State<Web>,
    IdPath(id): IdPath,
    SignedInForm(_, me, _): SignedInForm<CsrfOnly>,
) -> Result<Response, WebError> {
    web.social().add_friend(me.id, id).await?;
    Ok(see_other(&format!("/people/{id}?notice=befriended")))
}

pub(super) async fn unfriend(
    State(web): State<Web>,
    IdPath(id): IdPath,
    SignedInForm(_, me, _): SignedInForm<CsrfOnly>,
) -> Result<Response, WebError> {
    web.social().remove_friend(me.id, id).await?;
    Ok(see_other(&format!("/people/{id}?notice=unfriended")))
}
