use agora_platform::http::PathParams;
use axum::extract::State;

use agora_platform::ids::UserId;
use agora_platform::session::Authenticated;

use crate::domain;
use crate::error::SocialError;
use crate::rules::Social;

pub async fn set(
    State(service): State<Social>,
    Authenticated {
        user: UserId(me), ..
    }: Authenticated,
    PathParams(user_id): PathParams<String>,
) -> Result<(), SocialError> {
    let friend = domain::id("user_id", &user_id)?;
    service.add_friend(me, friend).await
}

pub async fn delete(
    State(service): State<Social>,
    Authenticated {
        user: UserId(me), ..
    }: Authenticated,
    PathParams(user_id): PathParams<String>,
) -> Result<(), SocialError> {
    let friend = domain::id("user_id", &user_id)?;
    service.remove_friend(me, friend).await
}
