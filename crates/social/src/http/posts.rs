use agora_platform::http::{JsonBody, PathParams, QueryParams};
use axum::Json;
use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use agora_platform::ids::UserId;
use agora_platform::session::Authenticated;

use super::{PostBody, Reader};
use crate::domain;
use crate::error::SocialError;
use crate::rules::Social;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    text: Option<String>,
}

/// Answers the new post's id as a bare JSON string, as the contract says.
pub async fn create(
    State(service): State<Social>,
    Authenticated {
        user: UserId(me), ..
    }: Authenticated,
    JsonBody(request): JsonBody<CreateRequest>,
) -> Result<Json<String>, SocialError> {
    let text = domain::post_text(request.text)?;
    let id = service.create_post(me, &text).await?;
    Ok(Json(id.to_string()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateRequest {
    id: Option<String>,
    text: Option<String>,
}

pub async fn update(
    State(service): State<Social>,
    Authenticated {
        user: UserId(me), ..
    }: Authenticated,
    JsonBody(request): JsonBody<UpdateRequest>,
) -> Result<(), SocialError> {
    let id = request
        .id
        .ok_or_else(|| SocialError::invalid("id is required"))?;
    let id = domain::id("id", &id)?;
    let text = domain::post_text(request.text)?;
    service.update_post(me, id, &text).await
}

pub async fn delete(
    State(service): State<Social>,
    Authenticated {
        user: UserId(me), ..
    }: Authenticated,
    PathParams(id): PathParams<String>,
) -> Result<(), SocialError> {
    let id = domain::id("id", &id)?;
    service.delete_post(me, id).await
}

pub async fn get(
    State(service): State<Social>,
    Reader(reader): Reader,
    PathParams(id): PathParams<String>,
) -> Result<Json<PostBody>, SocialError> {
    let id = domain::id("id", &id)?;
    Ok(Json(service.post(id, reader).await?.into()))
}

#[derive(Deserialize)]
pub struct FeedQuery {
    offset: Option<f64>,
    limit: Option<f64>,
}

/// `GET /post/feed`: friends' posts, newest first. A page cut short by its text budget says
/// where the next one starts in `X-Next-Offset` (docs/api.md).
pub async fn feed(
    State(service): State<Social>,
    Authenticated {
        user: UserId(me), ..
    }: Authenticated,
    QueryParams(query): QueryParams<FeedQuery>,
) -> Result<Response, SocialError> {
    let (offset, limit) = domain::feed_window(query.offset, query.limit)?;
    let page = service.feed_page(me, offset, limit).await?;
    let next_offset = offset + page.posts.len();
    let body: Vec<PostBody> = page.posts.into_iter().map(PostBody::from).collect();
    let mut response = Json(body).into_response();
    if page.truncated {
        response
            .headers_mut()
            .insert("x-next-offset", HeaderValue::from(next_offset));
    }
    Ok(response)
}
