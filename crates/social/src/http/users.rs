use agora_platform::http::{JsonBody, PathParams, QueryParams};
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::UserBody;
use crate::domain::{self, NameSearch, NewUser, Registration};
use crate::error::SocialError;
use crate::service::SocialService;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    first_name: Option<String>,
    second_name: Option<String>,
    birthdate: Option<String>,
    biography: Option<String>,
    city: Option<String>,
    password: Option<String>,
}

#[derive(Serialize)]
pub struct RegisterResponse {
    user_id: String,
}

pub async fn register(
    State(service): State<SocialService>,
    JsonBody(request): JsonBody<RegisterRequest>,
) -> Result<Json<RegisterResponse>, SocialError> {
    let user = NewUser::parse(Registration {
        first_name: request.first_name,
        second_name: request.second_name,
        birthdate: request.birthdate,
        biography: request.biography,
        city: request.city,
        password: request.password,
    })?;
    let id = service.register(user).await?;
    Ok(Json(RegisterResponse {
        user_id: id.to_string(),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    id: Option<String>,
    password: Option<String>,
}

#[derive(Serialize)]
pub struct LoginResponse {
    token: String,
}

pub async fn login(
    State(service): State<SocialService>,
    JsonBody(request): JsonBody<LoginRequest>,
) -> Result<Json<LoginResponse>, SocialError> {
    let id = request
        .id
        .ok_or_else(|| SocialError::invalid("id is required"))?;
    let id = domain::id("id", &id)?;
    let password = request
        .password
        .ok_or_else(|| SocialError::invalid("password is required"))?;
    let token = service.login(id, password).await?;
    Ok(Json(LoginResponse { token }))
}

pub async fn get(
    State(service): State<SocialService>,
    PathParams(id): PathParams<String>,
) -> Result<Json<UserBody>, SocialError> {
    let id = domain::id("id", &id)?;
    Ok(Json(service.user(id).await?.into()))
}

#[derive(Deserialize)]
pub struct SearchQuery {
    first_name: Option<String>,
    last_name: Option<String>,
}

pub async fn search(
    State(service): State<SocialService>,
    QueryParams(query): QueryParams<SearchQuery>,
) -> Result<Json<Vec<UserBody>>, SocialError> {
    let search = NameSearch::parse(query.first_name, query.last_name)?;
    let users = service.search(&search).await?;
    Ok(Json(users.into_iter().map(UserBody::from).collect()))
}
