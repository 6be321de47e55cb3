//! The social network's rules, independent of HTTP.

use std::future::Future;
use std::net::IpAddr;
use std::time::Duration;

use agora_platform::auth::{LoginLimiter, SessionCache};
use agora_platform::cache::CacheError;
use agora_platform::credentials::PasswordHasher;
use agora_platform::db::DbPool;
use agora_platform::ids::UserId;
use agora_platform::replicas::Database;
use agora_platform::session::Sessions;
use agora_platform::settings::PlatformSettings;

use crate::config::SocialConfig;
use crate::domain::{NameSearch, NewUser};
use crate::error::SocialError;
use crate::feed::FeedReader;
use crate::feed::cache::FeedCache;
use crate::feed::reader::FeedPage;
use crate::live::{LiveHub, Presence};
use crate::store::{Ownership, PostRecord, Store, UserRecord};

pub use crate::store::{PostRecord as Post, UserRecord as User};

/// Replay queries that may run at once, server-wide.
const REPLAY_QUERIES: usize = 8;

/// The social network's operations. Cheap to clone: handlers get a clone per request.
#[derive(Clone)]
pub struct Social {
    inner: std::sync::Arc<ServiceState>,
}

impl std::ops::Deref for Social {
    type Target = ServiceState;

    fn deref(&self) -> &ServiceState {
        &self.inner
    }
}

pub struct ServiceState {
    store: Store,
    hasher: PasswordHasher,
    token_ttl: Duration,
    max_sessions_per_user: i64,
    sessions: Sessions,
    login_limiter: LoginLimiter,
    feed: FeedReader,
    live: LiveHub,
    replay_limit: i64,
    live_heartbeat: Duration,
    /// Replay queries running at once: after a restart every client replays together.
    replays: std::sync::Arc<tokio::sync::Semaphore>,
}

impl Social {
    /// Fails only on invalid configuration; Redis is connected on first use.
    /// `database` is the primary with the replicas reads may use (see [`Social::connect`]).
    pub fn new(
        database: Database,
        settings: &PlatformSettings,
        config: &SocialConfig,
    ) -> anyhow::Result<Self> {
        let cache = FeedCache::from_config(settings, &config.feed)?;
        let pool = database.primary().clone();
        let store = Store::new(database).with_search_order(config.search_order);
        let prefix = settings.key_prefix();
        let presence = Presence::new(cache.redis().clone(), &prefix);
        let sessions = Sessions::new(
            pool.clone(),
            SessionCache::new(&settings.auth, cache.redis().clone(), &prefix),
        );
        let login_limiter = LoginLimiter::new(&settings.auth, cache.redis().clone(), &prefix);
        let live = LiveHub::new(
            config.live.resolve_instance_id(),
            presence,
            config.live.socket_buffer as usize,
            config.live.sockets_per_user as usize,
        );
        Ok(Self {
            inner: std::sync::Arc::new(ServiceState {
                feed: FeedReader::new(
                    store.clone(),
                    cache,
                    Duration::from_millis(config.feed.test_writeback_delay_ms),
                ),
                live,
                replay_limit: i64::from(config.live.replay_limit),
                live_heartbeat: config.live.heartbeat(),
                replays: std::sync::Arc::new(tokio::sync::Semaphore::new(REPLAY_QUERIES)),
                store,
                hasher: PasswordHasher::new(config.hash_concurrency(), config.password_hash_queue),
                token_ttl: config.token_ttl(),
                max_sessions_per_user: config.max_sessions_per_user,
                sessions,
                login_limiter,
            }),
        })
    }

    /// The service on the configured primary and replicas, read-your-writes marks in Redis.
    pub fn connect(settings: &PlatformSettings, config: &SocialConfig) -> anyhow::Result<Self> {
        let redis = agora_platform::cache::Redis::new(&settings.redis)?;
        let database = Database::connect(
            &settings.database,
            "agora-social",
            redis,
            &settings.key_prefix(),
        )?;
        Self::new(database, settings, config)
    }

    pub fn database(&self) -> &Database {
        self.store.database()
    }

    /// Sends the NOTIFYs that wake the feed worker after writes; run it beside the server.
    pub fn relay_waker(&self) -> &agora_platform::outbox::OutboxWaker {
        self.store.relay_waker()
    }

    pub fn feed(&self) -> &FeedReader {
        &self.feed
    }

    /// This instance's live feed sockets.
    pub fn live(&self) -> &LiveHub {
        &self.live
    }

    /// How often live sockets are pinged.
    pub fn live_heartbeat(&self) -> Duration {
        self.live_heartbeat
    }

    /// Ids of what a live client reconnecting after `since` missed: friends' newer posts,
    /// oldest first, at most the replay limit (the newest ones; the feed holds the rest).
    pub async fn live_replay_ids(&self, user_id: i64, since: i64) -> Result<Vec<i64>, SocialError> {
        let _permit = self.replays.acquire().await.expect("never closed");
        Ok(self
            .store
            .feed_ids_after(user_id, since, self.replay_limit)
            .await?)
    }

    /// Bodies of replayed posts, in the order of `ids`; deleted ones are left out.
    pub async fn live_replay_posts(&self, ids: &[i64]) -> Result<Vec<Post>, SocialError> {
        let _permit = self.replays.acquire().await.expect("never closed");
        let mut posts = self.store.posts_by_ids(ids).await?;
        posts.sort_by_key(|post| post.id);
        Ok(posts)
    }

    /// Age in seconds of the oldest change the feed worker has not taken yet, and how many
    /// wait (counted up to 100,000).
    pub async fn outbox_backlog(&self) -> Result<(i64, f64), SocialError> {
        Ok(self.store.outbox_backlog().await?)
    }

    /// Posts `offset..offset + limit` of the user's feed: friends' posts, newest first.
    pub async fn feed_page(
        &self,
        user_id: i64,
        offset: usize,
        limit: usize,
    ) -> Result<FeedPage, SocialError> {
        self.feed.page(user_id, offset, limit).await
    }

    /// Cache changes the author or user should see at once. The outbox makes them happen
    /// anyway (the worker repeats them), so a Redis that is down here only delays them.
    async fn best_effort(
        &self,
        what: &'static str,
        change: impl Future<Output = Result<(), CacheError>>,
    ) {
        if let Err(error) = change.await {
            // The outbox repeats the change through the worker.
            agora_platform::cache::warn_unavailable(what, &error);
        }
    }

    pub fn pool(&self) -> &DbPool {
        self.store.pool()
    }

    pub async fn register(&self, user: NewUser) -> Result<i64, SocialError> {
        let hash = self.hasher.hash(user.password.clone()).await?;
        Ok(self.store.insert_user(&user, &hash).await?)
    }

    /// Sessions, shared with every service that authenticates the same tokens.
    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// A token for `user_id`. Unknown users are 404 as the contract says; a wrong password is
    /// 400 (the contract has no 401 for login); too many failures of the account from the
    /// client's address, or of the address on any accounts, are 429 until their window passes
    /// (see [`LoginLimiter`]).
    pub async fn login(
        &self,
        user_id: i64,
        password: String,
        client: Option<IpAddr>,
    ) -> Result<String, SocialError> {
        let allowed = self
            .login_limiter
            .check(user_id, client)
            .await
            .map_err(|refused| SocialError::TooManyAttempts(refused.retry_after_secs))?;
        if !allowed.delay.is_zero() {
            tokio::time::sleep(allowed.delay).await;
        }
        let Some(stored) = self.store.password_hash(user_id).await? else {
            // Probing for ids counts against the address too.
            self.login_limiter.failed(user_id, client).await;
            return Err(SocialError::NotFound("user not found"));
        };
        if !self.hasher.verify(password, stored).await? {
            self.login_limiter.failed(user_id, client).await;
            return Err(SocialError::invalid("wrong password"));
        }
        Ok(self
            .sessions
            .open(UserId(user_id), self.token_ttl, self.max_sessions_per_user)
            .await?)
    }

    /// Ends the session of `token`.
    pub async fn logout(&self, token: &str) -> Result<(), SocialError> {
        self.sessions.close(token).await?;
        Ok(())
    }

    /// Ends every session of `user_id`, on every device.
    pub async fn logout_everywhere(&self, user_id: i64) -> Result<(), SocialError> {
        Ok(self.sessions.close_all(UserId(user_id)).await?)
    }

    /// A profile; `reader` (when the request is signed in) sees their own latest writes.
    pub async fn user(&self, id: i64, reader: Option<i64>) -> Result<UserRecord, SocialError> {
        let fresh = self.store.freshness_for(reader).await;
        self.store
            .user(id, fresh)
            .await?
            .ok_or(SocialError::NotFound("user not found"))
    }

    pub async fn search(
        &self,
        search: &NameSearch,
        reader: Option<i64>,
    ) -> Result<Vec<UserRecord>, SocialError> {
        let fresh = self.store.freshness_for(reader).await;
        Ok(self.store.search_users(search, fresh).await?)
    }

    /// The existing users among `ids`, in no particular order (for naming authors on a page).
    pub async fn users_by_ids(
        &self,
        ids: &[i64],
        reader: Option<i64>,
    ) -> Result<Vec<UserRecord>, SocialError> {
        let fresh = self.store.freshness_for(reader).await;
        Ok(self.store.users_by_ids(ids, fresh).await?)
    }

    /// Whether `user_id` has befriended `other`.
    pub async fn is_friend(&self, user_id: i64, other: i64) -> Result<bool, SocialError> {
        Ok(!self
            .store
            .friends_among(user_id, &[other])
            .await?
            .is_empty())
    }

    /// An author's posts older than `before` (all when `None`), newest first.
    pub async fn posts_by_author(
        &self,
        author_id: i64,
        before: Option<i64>,
        limit: i64,
        reader: Option<i64>,
    ) -> Result<Vec<PostRecord>, SocialError> {
        let fresh = self.store.freshness_for(reader).await;
        Ok(self
            .store
            .author_posts_before(author_id, before.unwrap_or(i64::MAX), limit, fresh)
            .await?)
    }

    pub async fn add_friend(&self, user_id: i64, friend_id: i64) -> Result<(), SocialError> {
        if user_id == friend_id {
            return Err(SocialError::invalid("you cannot befriend yourself"));
        }
        if !self.store.add_friend(user_id, friend_id).await? {
            return Err(SocialError::NotFound("user not found"));
        }
        self.best_effort("drop feed", self.feed.cache().drop_feed(user_id))
            .await;
        Ok(())
    }

    pub async fn remove_friend(&self, user_id: i64, friend_id: i64) -> Result<(), SocialError> {
        if user_id == friend_id {
            return Err(SocialError::invalid("you cannot unfriend yourself"));
        }
        if !self.store.user_exists(friend_id).await? {
            return Err(SocialError::NotFound("user not found"));
        }
        if let Some(tick) = self.store.remove_friend(user_id, friend_id).await? {
            self.best_effort(
                "drop feed",
                self.feed.cache().unfollowed(user_id, friend_id, tick),
            )
            .await;
        }
        Ok(())
    }

    pub async fn create_post(&self, author_id: i64, text: &str) -> Result<i64, SocialError> {
        Ok(self.store.create_post(author_id, text).await?)
    }

    pub async fn post(&self, id: i64, reader: Option<i64>) -> Result<PostRecord, SocialError> {
        let fresh = self.store.freshness_for(reader).await;
        self.store
            .post(id, fresh)
            .await?
            .ok_or(SocialError::NotFound("post not found"))
    }

    pub async fn update_post(
        &self,
        author_id: i64,
        id: i64,
        text: &str,
    ) -> Result<(), SocialError> {
        let (ownership, version) = self.store.update_post(author_id, id, text).await?;
        owned(ownership)?;
        self.best_effort("forget post", self.feed.cache().forget_post(id, version))
            .await;
        Ok(())
    }

    pub async fn delete_post(&self, author_id: i64, id: i64) -> Result<(), SocialError> {
        owned(self.store.delete_post(author_id, id).await?)?;
        self.best_effort("tombstone post", self.feed.cache().tombstone_post(id))
            .await;
        Ok(())
    }
}

fn owned(outcome: Ownership) -> Result<(), SocialError> {
    match outcome {
        Ownership::Changed => Ok(()),
        Ownership::NotFound => Err(SocialError::NotFound("post not found")),
        Ownership::NotOwner => Err(SocialError::Forbidden("only the author can change a post")),
    }
}
