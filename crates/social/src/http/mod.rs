//! The HTTP face of the social network: thin handlers that parse, call the service, render.

mod docs;
mod friends;
mod live;
mod posts;
mod users;

use std::future::Future;
use std::sync::Arc;

use agora_platform::config::HttpConfig;
use agora_platform::db;
use agora_platform::http::{OpsEndpoints, bearer_token};
use agora_platform::service::Service;
use agora_platform::session::Sessions;
use agora_platform::settings::PlatformSettings;
use axum::Router;
use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::routing::{get, post, put};
use serde::Serialize;
use tokio::net::TcpListener;

use crate::config::SocialConfig;
use crate::domain::format_date;
use crate::error::SocialError;
use crate::live::consumer::LiveStatus;
use crate::rules::{Post, Social, User};

/// Outbox rows older than this mean the worker or the broker is not taking them.
const OUTBOX_LAG_DEGRADED_SECS: f64 = 30.0;

/// The application's routes (contract, docs, `/health`) and its operations endpoints.
pub fn app(service: Social, live: Arc<LiveStatus>) -> (Router, OpsEndpoints) {
    let pool = service.pool().clone();
    let database = service.database().clone();
    let redis = service.feed().cache().redis().clone();
    let outbox_service = service.clone();
    let ops = OpsEndpoints::default()
        .check("postgres", db::readiness_check(pool.clone()))
        .optional_check("postgres_commits", db::commit_check(pool))
        .optional_check("redis", move || {
            let redis = redis.clone();
            Box::pin(async move { redis.ping().await.map_err(|error| error.to_string()) })
        })
        .optional_check("rabbitmq", move || {
            let consuming = live.is_consuming();
            Box::pin(async move {
                consuming
                    .then_some(())
                    .ok_or_else(|| "not consuming the live feed queue".to_owned())
            })
        })
        .optional_check("feed_worker", move || {
            let service = outbox_service.clone();
            Box::pin(async move {
                let (waiting, age) = service
                    .outbox_backlog()
                    .await
                    .map_err(|error| error.to_string())?;
                if age > OUTBOX_LAG_DEGRADED_SECS {
                    return Err(format!(
                        "{waiting} feed changes waiting for {age:.0} s: is the broker or `agora worker` down?"
                    ));
                }
                Ok(())
            })
        })
        .on_scrape(move || database.record_pool_metrics());
    let ops = match service.database().replica_check() {
        Some(check) => {
            let database = service.database().clone();
            ops.optional_check("replicas", move || check())
                .detail("replicas", move || database.replica_states())
        }
        None => ops,
    };
    let api = Router::new()
        .route("/login", post(users::login))
        .route("/logout", post(users::logout))
        .route("/logout/all", post(users::logout_all))
        .route("/user/register", post(users::register))
        .route("/user/get/{id}", get(users::get))
        .route("/user/search", get(users::search))
        .route("/friend/set/{user_id}", put(friends::set))
        .route("/friend/delete/{user_id}", put(friends::delete))
        .route("/post/create", post(posts::create))
        .route("/post/update", put(posts::update))
        .route("/post/delete/{id}", put(posts::delete))
        .route("/post/get/{id}", get(posts::get))
        .route("/post/feed", get(posts::feed))
        .route("/post/feed/posted", get(live::posted))
        .with_state(service);
    (api.merge(docs::router()), ops)
}

/// The social network as a service the platform serves, around operations the caller may also
/// use (the web front end shares them): its routes, readiness checks, the session and
/// post-change listeners, the live feed consumer, and closing live sockets on shutdown.
pub fn service_of(
    service: Social,
    settings: &PlatformSettings,
    config: &SocialConfig,
) -> anyhow::Result<Service> {
    let sessions = service.sessions().cache().clone();
    // Subscribed before the listener starts, so no revocation goes unheard.
    let revocations = sessions.revocations();
    let socket_sessions = service.sessions().clone();
    let local_posts = service.feed().cache().local_posts().clone();
    let relay_waker = service.relay_waker().clone();
    let (live_stop_tx, live_stop) = tokio::sync::watch::channel(false);
    let live = crate::live::consumer::spawn(
        config.live.clone(),
        settings.namespace.clone(),
        service.live().clone(),
        live_stop,
    );
    let presence_task = live.presence;
    tracing::info!(instance = %service.live().instance(), "live feed instance");
    let hub = service.live().clone();
    let closing_hub = hub.clone();
    let (api, ops) = app(service, live.status);
    Ok(Service::new("social", api, ops)
        .background(move |stop| sessions.listen(stop))
        .background({
            let hub = hub.clone();
            move |stop| {
                crate::live::revocations::end_revoked_sockets(
                    hub,
                    socket_sessions,
                    revocations,
                    stop,
                )
            }
        })
        .background(move |stop| local_posts.listen(stop))
        .background(move |stop| relay_waker.run(stop))
        .on_shutdown(move || {
            // Upgraded sockets are not connections graceful shutdown waits for: close them.
            closing_hub.close_all();
            let _ = live_stop_tx.send(true);
        })
        .after_serve(move |grace| async move { drain_live(&hub, presence_task, grace).await }))
}

/// Serves the social network alone on `listener` until `shutdown` resolves.
pub async fn run(
    settings: PlatformSettings,
    http: HttpConfig,
    config: SocialConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let social = crate::service(&config, &settings)?;
    agora_platform::service::run(vec![social], listener, &http, shutdown).await
}

/// Upgraded sockets outlive `serve`: gives their sessions up to 5 s (within the grace period)
/// to send 1012, and the presence task time to withdraw this instance, before the runtime goes.
async fn drain_live(
    hub: &crate::live::LiveHub,
    presence_task: tokio::task::JoinHandle<()>,
    grace: std::time::Duration,
) {
    use std::time::Duration;
    let deadline = tokio::time::Instant::now() + grace.min(Duration::from_secs(5));
    while hub.socket_count() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The withdrawal is one Redis round trip: it gets its own short allowance.
    let _ = tokio::time::timeout(Duration::from_millis(500), presence_task).await;
}

/// A request's bearer token, unchecked; 401 without one.
pub struct BearerToken(pub String);

impl FromRequestParts<Social> for BearerToken {
    type Rejection = SocialError;

    async fn from_request_parts(
        parts: &mut Parts,
        _service: &Social,
    ) -> Result<Self, Self::Rejection> {
        bearer_token(parts)
            .map(|token| BearerToken(token.to_owned()))
            .ok_or(SocialError::Unauthorized("missing bearer token"))
    }
}

/// Who reads, on routes open to anyone: the signed-in user when the request carries a valid
/// token, so that they see their own latest writes (read-your-writes); nobody otherwise. A
/// missing or bad token is no error here. Without replicas every read sees every write, and
/// the token is not even looked at.
pub struct Reader(pub Option<i64>);

impl FromRequestParts<Social> for Reader {
    type Rejection = SocialError;

    async fn from_request_parts(
        parts: &mut Parts,
        service: &Social,
    ) -> Result<Self, Self::Rejection> {
        if !service.database().has_replicas() {
            return Ok(Reader(None));
        }
        let Some(token) = bearer_token(parts) else {
            return Ok(Reader(None));
        };
        Ok(Reader(
            service
                .sessions()
                .authenticate(token)
                .await
                .ok()
                .map(|(user, _)| user.0),
        ))
    }
}

/// The contract's `User`: absent fields are omitted, never null.
#[derive(Serialize)]
pub struct UserBody {
    id: String,
    first_name: String,
    second_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    birthdate: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    biography: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    city: Option<String>,
}

impl From<User> for UserBody {
    fn from(user: User) -> Self {
        Self {
            id: user.id.to_string(),
            first_name: user.first_name,
            second_name: user.second_name,
            birthdate: user.birthdate.map(format_date),
            biography: user.biography,
            city: user.city,
        }
    }
}

/// The contract's `Post`.
#[derive(Serialize)]
pub struct PostBody {
    id: String,
    text: String,
    author_user_id: String,
}

impl From<crate::feed::FeedPost> for PostBody {
    fn from(post: crate::feed::FeedPost) -> Self {
        Self {
            id: post.id.to_string(),
            text: post.text,
            author_user_id: post.author_id.to_string(),
        }
    }
}

impl From<Post> for PostBody {
    fn from(post: Post) -> Self {
        Self {
            id: post.id.to_string(),
            text: post.text,
            author_user_id: post.author_id.to_string(),
        }
    }
}

/// The platform's `Authenticated` extractor checks tokens against the service's sessions.
impl FromRef<Social> for Sessions {
    fn from_ref(service: &Social) -> Sessions {
        service.sessions().clone()
    }
}
