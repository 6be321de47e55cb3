//! The HTTP face of dialogs: the contract's `POST /dialog/{user_id}/send` and
//! `GET /dialog/{user_id}/list`, and our additions (cursor paging, the caller's dialog list,
//! marking a dialog read). Handlers parse, call [`Dialogs`], render.

use agora_platform::db;
use agora_platform::http::{JsonBody, OpsEndpoints, PathParams, QueryParams};
use agora_platform::ids::{MessageId, UserId};
use agora_platform::service::Service;
use agora_platform::session::Authenticated;
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::error::DialogsError;
use crate::rules::{DialogEntry, Dialogs};
use crate::store::Message;

/// Messages a page holds by default, and at most.
const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 1000;

/// Every path the dialogs service answers (a process without it forwards these).
pub const PATHS: [&str; 5] = [
    "/dialog/{user_id}/send",
    "/dialog/{user_id}/list",
    "/dialog/{user_id}/read",
    "/dialogs",
    "/dialogs/unread",
];

/// The routes, with their state.
pub fn router(dialogs: Dialogs) -> Router {
    Router::new()
        .route("/dialog/{user_id}/send", post(send))
        .route("/dialog/{user_id}/list", get(list))
        .route("/dialog/{user_id}/read", post(mark_read))
        .route("/dialogs", get(dialogs_of))
        .route("/dialogs/unread", get(unread))
        .with_state(dialogs)
}

/// Dialogs as a service the platform serves: routes, a readiness check per shard server, and
/// following the shard map.
pub fn service_of(dialogs: Dialogs) -> Service {
    let shards = dialogs.shards().clone();
    let sessions = dialogs.sessions().cache().clone();
    let for_ready = shards.clone();
    // Optional: a shard server that is down takes only its own dialogs out of service.
    let ops = OpsEndpoints::default().optional_check("dialog_shards", move || {
        let shards = for_ready.clone();
        Box::pin(async move {
            let map = shards.map();
            let servers = shards
                .all_servers(&map)
                .map_err(|error| error.to_string())?;
            if servers.is_empty() {
                return Err("the shard map is not read yet".to_owned());
            }
            let mut down = Vec::new();
            for server in servers {
                if db::readiness_check(server.pool.clone())().await.is_err() {
                    down.push(server.name);
                }
            }
            if down.is_empty() {
                Ok(())
            } else {
                Err(format!("shard servers down: {}", down.join(", ")))
            }
        })
    });
    let sweeper = dialogs.clone();
    let settler = shards.clone();
    Service::new("dialogs", router(dialogs), ops)
        .background(move |stop| shards.follow(stop))
        .background(move |stop| crate::reshard::settle_abandoned_moves(settler, stop))
        .background(move |stop| sweeper.sweep_unread(stop))
        // Its own session cache, so it runs the same alone or beside the social network.
        .background(move |stop| sessions.listen(stop))
}

fn user_id(text: &str) -> Result<UserId, DialogsError> {
    text.parse().map_err(|_| {
        DialogsError::invalid("user_id must be a positive decimal id without leading zeros")
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    text: Option<String>,
}

#[derive(Serialize)]
pub struct SendReply {
    id: MessageId,
}

async fn send(
    State(dialogs): State<Dialogs>,
    caller: Authenticated,
    PathParams(to): PathParams<String>,
    JsonBody(request): JsonBody<SendRequest>,
) -> Result<Json<SendReply>, DialogsError> {
    let to = user_id(&to)?;
    let text = request
        .text
        .ok_or_else(|| DialogsError::invalid("text is required"))?;
    let id = dialogs.send(caller.user, to, &text).await?;
    Ok(Json(SendReply { id }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    before: Option<String>,
    limit: Option<String>,
}

/// The contract's `DialogMessage`, with the message's `id` added for paging.
#[derive(Serialize)]
pub struct DialogMessage {
    id: MessageId,
    from: UserId,
    to: UserId,
    text: String,
}

fn render(message: Message, me: UserId, other: UserId) -> DialogMessage {
    let to = if message.from == me { other } else { me };
    DialogMessage {
        id: message.id,
        from: message.from,
        to,
        text: message.text,
    }
}

fn limit(text: Option<&str>) -> Result<i64, DialogsError> {
    match text {
        None => Ok(DEFAULT_LIMIT),
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|limit| (1..=MAX_LIMIT).contains(limit))
            .ok_or_else(|| DialogsError::invalid(format!("limit must be 1..{MAX_LIMIT}"))),
    }
}

async fn list(
    State(dialogs): State<Dialogs>,
    caller: Authenticated,
    PathParams(other): PathParams<String>,
    QueryParams(query): QueryParams<ListQuery>,
) -> Result<Json<Vec<DialogMessage>>, DialogsError> {
    let other = user_id(&other)?;
    let before = query
        .before
        .as_deref()
        .map(|text| {
            text.parse::<MessageId>()
                .map_err(|_| DialogsError::invalid("before must be a message id"))
        })
        .transpose()?;
    let limit = limit(query.limit.as_deref())?;
    let messages = dialogs.list(caller.user, other, before, limit).await?;
    Ok(Json(
        messages
            .into_iter()
            .map(|message| render(message, caller.user, other))
            .collect(),
    ))
}

async fn mark_read(
    State(dialogs): State<Dialogs>,
    caller: Authenticated,
    PathParams(other): PathParams<String>,
) -> Result<(), DialogsError> {
    let other = user_id(&other)?;
    // Reading the newest message marks the dialog read up to it.
    dialogs.list(caller.user, other, None, 1).await?;
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DialogsQuery {
    limit: Option<String>,
}

#[derive(Serialize)]
pub struct DialogBody {
    user_id: UserId,
    last_message: DialogMessage,
    /// Absent when the counters cannot be read (Redis away).
    #[serde(skip_serializing_if = "Option::is_none")]
    unread: Option<i64>,
}

async fn dialogs_of(
    State(dialogs): State<Dialogs>,
    caller: Authenticated,
    QueryParams(query): QueryParams<DialogsQuery>,
) -> Result<Json<Vec<DialogBody>>, DialogsError> {
    let limit = limit(query.limit.as_deref())?;
    let entries = dialogs.dialogs_of(caller.user, limit).await?;
    // The list works without Redis; only the counts are left out then.
    let counts: Option<std::collections::HashMap<UserId, i64>> =
        match dialogs.unread(caller.user).await {
            Ok(counts) => Some(counts.dialogs.into_iter().collect()),
            Err(error) => {
                tracing::warn!(%error, "dialog list without unread counts");
                None
            }
        };
    Ok(Json(
        entries
            .into_iter()
            .map(|entry: DialogEntry| DialogBody {
                user_id: entry.with,
                unread: counts
                    .as_ref()
                    .map(|counts| counts.get(&entry.with).copied().unwrap_or(0)),
                last_message: render(entry.last_message, caller.user, entry.with),
            })
            .collect(),
    ))
}

#[derive(Serialize)]
pub struct UnreadBody {
    total: i64,
    dialogs: Vec<UnreadDialog>,
}

#[derive(Serialize)]
pub struct UnreadDialog {
    user_id: UserId,
    unread: i64,
}

async fn unread(
    State(dialogs): State<Dialogs>,
    caller: Authenticated,
) -> Result<Json<UnreadBody>, DialogsError> {
    let counts = dialogs.unread(caller.user).await?;
    Ok(Json(UnreadBody {
        total: counts.total,
        dialogs: counts
            .dialogs
            .into_iter()
            .map(|(user_id, unread)| UnreadDialog { user_id, unread })
            .collect(),
    }))
}
