use agora_platform::http::{JsonBody, PathParams, QueryParams};
use agora_platform::peer::ClientAddress;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use agora_platform::ids::UserId;
use agora_platform::session::Authenticated;

use super::{BearerToken, Reader, UserBody};
use crate::domain::{self, NameSearch, NewUser, Registration};
use crate::error::SocialError;
use crate::rules::Social;

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
    State(service): State<Social>,
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

/// The token is a credential: no cache may keep the reply.
pub async fn login(
    State(service): State<Social>,
    ClientAddress(client): ClientAddress,
    JsonBody(request): JsonBody<LoginRequest>,
) -> Result<Response, SocialError> {
    let id = request
        .id
        .ok_or_else(|| SocialError::invalid("id is required"))?;
    let id = domain::id("id", &id)?;
    let password = request
        .password
        .ok_or_else(|| SocialError::invalid("password is required"))?;
    let token = service.login(id, password, client).await?;
    let mut response = Json(LoginResponse { token }).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// `POST /logout`: ends the session of the token it carries.
pub async fn logout(
    State(service): State<Social>,
    BearerToken(token): BearerToken,
) -> Result<(), SocialError> {
    service.logout(&token).await
}

/// `POST /logout/all`: ends every session of the token's user.
pub async fn logout_all(
    State(service): State<Social>,
    Authenticated {
        user: UserId(me), ..
    }: Authenticated,
) -> Result<(), SocialError> {
    service.logout_everywhere(me).await
}

pub async fn get(
    State(service): State<Social>,
    Reader(reader): Reader,
    PathParams(id): PathParams<String>,
) -> Result<Json<UserBody>, SocialError> {
    let id = domain::id("id", &id)?;
    Ok(Json(service.user(id, reader).await?.into()))
}

#[derive(Deserialize)]
pub struct SearchQuery {
    first_name: Option<String>,
    last_name: Option<String>,
}

pub async fn search(
    State(service): State<Social>,
    Reader(reader): Reader,
    QueryParams(query): QueryParams<SearchQuery>,
) -> Result<Json<Vec<UserBody>>, SocialError> {
    let search = NameSearch::parse(query.first_name, query.last_name)?;
    let users = service.search(&search, reader).await?;
    Ok(Json(users.into_iter().map(UserBody::from).collect()))
}
