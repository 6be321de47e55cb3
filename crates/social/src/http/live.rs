//! `GET /post/feed/posted`: the live feed over WebSocket (`crates/social/api/otus-asyncapi.json`).

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use agora_platform::http::QueryParams;
use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade, close_code};
use axum::response::Response;
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};

use agora_platform::cache::CacheError;

use crate::domain;
use crate::error::SocialError;
use crate::live::hub::Subscription;
use crate::rules::Social;
use agora_platform::ids::UserId;
use agora_platform::session::{Authenticated, BearerOrPageCookie};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveQuery {
    /// The last post id the client saw: newer posts are replayed first.
    since: Option<String>,
}

/// The contract's `Post` message.
#[derive(Serialize)]
struct PostedMessage<'a> {
    #[serde(rename = "postId")]
    post_id: String,
    #[serde(rename = "postText")]
    post_text: &'a str,
    author_user_id: String,
}

/// Ids already sent on one socket, so a post that arrives both by replay and live, or twice
/// after a worker retry, is sent once: every replayed id (at most the replay limit), and a
/// ring of the last live ones (a retried delivery comes soon after the first).
struct SentIds {
    replayed: HashSet<i64>,
    recent: VecDeque<i64>,
}

const RECENT_IDS: usize = 128;

impl SentIds {
    fn new() -> Self {
        Self {
            replayed: HashSet::new(),
            recent: VecDeque::with_capacity(RECENT_IDS),
        }
    }

    fn replayed(&mut self, id: i64) {
        self.replayed.insert(id);
    }

    /// False when `id` was sent already.
    fn insert(&mut self, id: i64) -> bool {
        if self.replayed.contains(&id) || self.recent.contains(&id) {
            return false;
        }
        if self.recent.len() == RECENT_IDS {
            self.recent.pop_front();
        }
        self.recent.push_back(id);
        true
    }
}

/// Replayed posts fetched per query: bounds what a socket holds while its client reads.
const REPLAY_PAGE: usize = 50;

/// Largest frame a client may send; ours are pongs and closes.
const CLIENT_FRAME_LIMIT: usize = 4 * 1024;
/// Bytes a socket may have unsent before a send fails: the socket's buffer of posts bounds
/// what waits in memory, this bounds what waits in the library.
const MAX_WRITE_BUFFER: usize = 1024 * 1024;

/// The token is checked before the upgrade: a client without one gets a plain 401.
pub async fn posted(
    State(service): State<Social>,
    Authenticated {
        user: UserId(me),
        valid_for,
        session: socket_session,
        ..
    }: Authenticated<BearerOrPageCookie>,
    QueryParams(query): QueryParams<LiveQuery>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, SocialError> {
    let since = query
        .since
        .map(|since| domain::id("since", &since))
        .transpose()?;
    let upgrade = upgrade.map_err(|rejection| {
        SocialError::invalid(format!(
            "this endpoint is a WebSocket: send an upgrade request ({rejection})"
        ))
    })?;
    let heartbeat = service.live_heartbeat();
    // Registered and announced before the handshake completes: a post made once the client
    // holds an open socket is routed to it.
    let subscription =
        service
            .live()
            .subscribe(me, socket_session.into())
            .ok_or(SocialError::TooManySockets(
                service.live().sockets_per_user(),
            ))?;
    if !service.live().announce(me).await {
        return Err(SocialError::Cache(CacheError::Unavailable(
            "the live feed cannot record this connection now".into(),
        )));
    }
    // Clients only send pongs and closes: a 128 KiB read buffer per socket (the library's
    // default) would be most of a socket's memory for nothing.
    let upgrade = upgrade
        .read_buffer_size(CLIENT_FRAME_LIMIT)
        .max_message_size(CLIENT_FRAME_LIMIT)
        .max_frame_size(CLIENT_FRAME_LIMIT)
        .write_buffer_size(0)
        .max_write_buffer_size(MAX_WRITE_BUFFER);
    Ok(upgrade.on_upgrade(move |socket| {
        session(socket, service, subscription, since, heartbeat, valid_for)
    }))
}

type Sink = SplitSink<WebSocket, Message>;

/// Why a session ended, for the close frame and the metric.
enum End {
    ClientLeft,
    Dead,
    TooSlow,
    ReplayFailed,
    Interrupted,
    TokenExpired,
    SignedOut,
    ShuttingDown,
}

impl End {
    fn label(&self) -> &'static str {
        match self {
            End::ClientLeft => "client",
            End::Dead => "heartbeat",
            End::TooSlow => "too_slow",
            End::ReplayFailed => "replay_failed",
            End::Interrupted => "interrupted",
            End::TokenExpired => "token_expired",
            End::SignedOut => "signed_out",
            End::ShuttingDown => "shutdown",
        }
    }

    fn close_frame(&self) -> Option<CloseFrame> {
        let (code, reason) = match self {
            End::ClientLeft => return None,
            End::Dead => (close_code::AWAY, "no pong within two heartbeats"),
            End::TooSlow => (
                close_code::AGAIN,
                "too slow: reconnect with since=<last post id>",
            ),
            End::ReplayFailed => (
                close_code::AGAIN,
                "replay unavailable: reconnect with since=<last post id>",
            ),
            End::Interrupted => (
                close_code::AGAIN,
                "live stream interrupted: reconnect with since=<last post id>",
            ),
            End::TokenExpired => (
                close_code::POLICY,
                "token expired: log in again and reconnect with since=<last post id>",
            ),
            End::SignedOut => (
                close_code::POLICY,
                "signed out: log in again and reconnect with since=<last post id>",
            ),
            End::ShuttingDown => (
                close_code::RESTART,
                "server restarting: reconnect with since=<last post id>",
            ),
        };
        Some(CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        })
    }
}

async fn session(
    socket: WebSocket,
    service: Social,
    mut subscription: Subscription,
    since: Option<i64>,
    heartbeat: Duration,
    valid_for: Duration,
) {
    let token_expires = tokio::time::Instant::now() + valid_for;
    let hub = service.live().clone();
    let user = subscription.user();
    let mut closing = hub.closing();
    let mut interruptions = hub.interruptions();
    let (mut sink, mut stream) = socket.split();
    let mut sent = SentIds::new();
    let end = 'session: {
        if let Some(since) = since {
            // The client has the `since` post. A broker that lost the ack of its delivery (a
            // connection cut right after it) delivers it again: it must not reach this socket.
            sent.replayed(since);
            // Live posts queue in the subscription meanwhile and are deduplicated after.
            match replay(&service, &mut sink, &mut sent, user, since, heartbeat).await {
                Ok(()) => {}
                Err(end) => break 'session end,
            }
        }
        if *closing.borrow_and_update() {
            break 'session End::ShuttingDown;
        }
        let mut ticker = tokio::time::interval(heartbeat);
        ticker.tick().await;
        let mut last_heard = Instant::now();
        loop {
            tokio::select! {
                post = subscription.posts.recv() => {
                    let Some(post) = post else { break 'session End::TooSlow };
                    if sent.insert(post.id)
                        && send(&mut sink, encode(post.id, post.author_id, &post.text), heartbeat).await.is_err()
                    {
                        break 'session End::ClientLeft;
                    }
                }
                frame = stream.next() => match frame {
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break 'session End::ClientLeft,
                    // Pongs, pings (answered by the library) and anything else prove liveness.
                    Some(Ok(_)) => last_heard = Instant::now(),
                },
                _ = ticker.tick() => {
                    if last_heard.elapsed() > heartbeat * 2 {
                        break 'session End::Dead;
                    }
                    if send(&mut sink, Message::Ping(Default::default()), heartbeat).await.is_err() {
                        break 'session End::ClientLeft;
                    }
                }
                _ = interruptions.changed() => break 'session End::Interrupted,
                _ = tokio::time::sleep_until(token_expires) => break 'session End::TokenExpired,
                Ok(()) = &mut subscription.revoked => break 'session End::SignedOut,
                _ = closing.changed() => break 'session End::ShuttingDown,
            }
        }
    };
    metrics::counter!("live_sessions_ended_total", "reason" => end.label()).increment(1);
    if let Some(frame) = end.close_frame() {
        let _ = send(&mut sink, Message::Close(Some(frame)), heartbeat).await;
    }
    drop(subscription);
}

/// Sends what the user missed since `since`, oldest first, a page of bodies at a time.
async fn replay(
    service: &Social,
    sink: &mut Sink,
    sent: &mut SentIds,
    user: i64,
    since: i64,
    heartbeat: Duration,
) -> Result<(), End> {
    let failed = |error: SocialError| {
        tracing::warn!(%error, user, "live replay failed");
        End::ReplayFailed
    };
    let ids = service.live_replay_ids(user, since).await.map_err(failed)?;
    let mut replayed = 0;
    for page in ids.chunks(REPLAY_PAGE) {
        let posts = service.live_replay_posts(page).await.map_err(failed)?;
        for post in posts {
            sent.replayed(post.id);
            replayed += 1;
            let message = encode(post.id, post.author_id, &post.text);
            if send(sink, message, heartbeat).await.is_err() {
                return Err(End::ClientLeft);
            }
        }
    }
    metrics::counter!("live_replayed_posts_total").increment(replayed);
    Ok(())
}

fn encode(id: i64, author_id: i64, text: &str) -> Message {
    let body = PostedMessage {
        post_id: id.to_string(),
        post_text: text,
        author_user_id: author_id.to_string(),
    };
    Message::Text(
        serde_json::to_string(&body)
            .expect("a post serializes")
            .into(),
    )
}

/// Sends one frame; a client that cannot take it within a heartbeat counts as gone.
async fn send(sink: &mut Sink, message: Message, heartbeat: Duration) -> Result<(), ()> {
    match tokio::time::timeout(heartbeat, sink.send(message)).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

#[cfg(test)]
mod tests {
    use super::SentIds;

    #[test]
    fn live_ids_are_forgotten_beyond_the_ring_but_replayed_ones_never() {
        let mut sent = SentIds::new();
        sent.replayed(-5);
        assert!(sent.insert(1));
        assert!(!sent.insert(1));
        for id in 2..=super::RECENT_IDS as i64 + 1 {
            assert!(sent.insert(id));
        }
        assert!(sent.insert(1), "1 was pushed out");
        assert!(!sent.insert(-5), "a replayed post is never sent again");
    }
}
