//! What authentication needs beyond the session store: an in-process cache of checked bearer
//! tokens that every instance drops at once when a session is revoked, and a limit on failed
//! logins shared by all instances.
//!
//! Revocation reaches other instances through Redis pub/sub. While an instance is not
//! subscribed (Redis down, reconnecting) it bypasses its cache and asks the database on every
//! request, and it empties the cache when it subscribes again, since it may have missed
//! messages: a revoked token is never served from a cache that could not hear of it. The one
//! gap is a revocation whose message Redis refused while subscribers stayed connected: the
//! entry lives out its TTL, a few seconds.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::cache::{CacheError, Redis};
use crate::invalidation::{Forget, Invalidations};
use clap::Args;

/// Session cache and login limits; flags or `AGORA_*` variables.
#[derive(Debug, Clone, Args)]
pub struct AuthConfig {
    /// Milliseconds a checked token is trusted without asking the database; 0 turns the cache
    /// off. Revocation does not wait for it (see docs/api.md).
    #[arg(
        long = "session-cache-ttl-ms",
        env = "AGORA_SESSION_CACHE_TTL_MS",
        default_value_t = 5_000
    )]
    pub session_cache_ttl_ms: u64,

    /// Tokens the cache holds at most.
    #[arg(
        long = "session-cache-capacity",
        env = "AGORA_SESSION_CACHE_CAPACITY",
        default_value_t = 100_000
    )]
    pub session_cache_capacity: usize,

    /// Failed logins of one account from one client address within the window before that
    /// address's logins to the account get 429; as many from all addresses together make every
    /// login to the account wait a second (the owner elsewhere still signs in).
    #[arg(
        long = "login-failures-per-account",
        env = "AGORA_LOGIN_FAILURES_PER_ACCOUNT",
        default_value_t = 10
    )]
    pub failures_per_account: u32,

    /// Failed logins from one client address within the window before its logins get 429.
    #[arg(
        long = "login-failures-per-address",
        env = "AGORA_LOGIN_FAILURES_PER_ADDRESS",
        default_value_t = 100
    )]
    pub failures_per_address: u32,

    /// Seconds a run of failed logins is counted over; the count starts at the first failure.
    #[arg(long = "login-failure-window-secs", env = "AGORA_LOGIN_FAILURE_WINDOW_SECS", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub failure_window_secs: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            session_cache_ttl_ms: 5_000,
            session_cache_capacity: 100_000,
            failures_per_account: 10,
            failures_per_address: 100,
            failure_window_secs: 300,
        }
    }
}

/// Revocations a slow listener may fall behind by before it is told it lagged.
pub const REVOCATIONS_BUFFERED: usize = 1024;

/// A token hash as stored (SHA-256).
pub type TokenHash = Vec<u8>;

struct CachedSession {
    user: i64,
    token_expires: Instant,
    trusted_until: Instant,
}

/// Checked tokens, per instance. Cheap to clone.
#[derive(Clone)]
pub struct SessionCache {
    inner: Arc<CacheInner>,
}

struct CacheInner {
    entries: Mutex<HashMap<TokenHash, CachedSession>>,
    ttl: Duration,
    capacity: usize,
    /// Revocations, announced by user id; without a subscription the cache is not used.
    revocations: Invalidations,
    /// Every revocation this instance makes or hears, for holders of long-lived connections
    /// (live sockets) that must end with their session.
    heard: tokio::sync::broadcast::Sender<Forget>,
}

impl SessionCache {
    /// A cache that learns of revocations on the Redis channel `<prefix>sessions:revoked`.
    /// Call [`SessionCache::listen`] to start hearing them; until then it caches nothing.
    pub fn new(config: &AuthConfig, redis: Redis, key_prefix: &str) -> Self {
        Self {
            inner: Arc::new(CacheInner {
                entries: Mutex::default(),
                ttl: Duration::from_millis(config.session_cache_ttl_ms),
                capacity: config.session_cache_capacity.max(1),
                revocations: Invalidations::new(redis, format!("{key_prefix}sessions:revoked")),
                heard: tokio::sync::broadcast::Sender::new(REVOCATIONS_BUFFERED),
            }),
        }
    }

    fn enabled(&self) -> bool {
        !self.inner.ttl.is_zero() && self.inner.revocations.listening()
    }

    /// The user of a token checked recently, and how long the token stays valid.
    pub fn get(&self, hash: &[u8]) -> Option<(i64, Duration)> {
        if !self.enabled() {
            return None;
        }
        let now = Instant::now();
        let entries = self.inner.entries.lock().expect("not poisoned");
        let hit = entries
            .get(hash)
            .filter(|entry| now < entry.trusted_until && now < entry.token_expires)
            .map(|entry| (entry.user, entry.token_expires - now));
        drop(entries);
        metrics::counter!("session_cache_total", "outcome" => if hit.is_some() { "hit" } else { "miss" })
            .increment(1);
        hit
    }

    /// The revocation generation to pass to [`SessionCache::insert`]: read it before asking
    /// the database about a token.
    pub fn generation(&self) -> u64 {
        self.inner.revocations.generation()
    }

    /// Remembers a token the database confirmed, unless a revocation was heard since
    /// `generation` was read (the answer may predate it).
    pub fn insert(&self, hash: TokenHash, user: i64, valid_for: Duration, generation: u64) {
        if !self.enabled() {
            return;
        }
        let now = Instant::now();
        let mut entries = self.inner.entries.lock().expect("not poisoned");
        // Checked under the lock that `forget` takes after bumping the generation.
        if self.inner.revocations.generation() != generation {
            return;
        }
        if entries.len() >= self.inner.capacity {
            entries.retain(|_, entry| now < entry.trusted_until && now < entry.token_expires);
            if entries.len() >= self.inner.capacity {
                // Every entry is fresh: start over rather than track recency on every hit.
                entries.clear();
            }
        }
        entries.insert(
            hash,
            CachedSession {
                user,
                token_expires: now + valid_for,
                trusted_until: now + self.inner.ttl,
            },
        );
    }

    fn forget(&self, what: Forget) {
        let mut entries = self.inner.entries.lock().expect("not poisoned");
        match what {
            Forget::Key(user) => entries.retain(|_, entry| entry.user != user),
            Forget::All => entries.clear(),
        }
        drop(entries);
        // Nobody listening is fine.
        let _ = self.inner.heard.send(what);
    }

    /// Revocations from now on: a user some of whose sessions ended, or `All` when some may
    /// have been missed (this instance was not subscribed). A receiver that falls more than
    /// [`REVOCATIONS_BUFFERED`] behind gets `Lagged`, and must treat it as `All`.
    pub fn revocations(&self) -> tokio::sync::broadcast::Receiver<Forget> {
        self.inner.heard.subscribe()
    }

    /// Tells every instance (this one included) that some of `user`'s sessions were revoked.
    /// Call after the sessions are gone from the database.
    pub async fn revoked(&self, user: i64) {
        self.forget(Forget::Key(user));
        self.inner.revocations.announce(user).await;
    }

    /// Listens for revocations until `stop` turns true. Runs for the life of the server.
    /// Runs even with the cache off: live sockets still need to hear of revocations.
    pub async fn listen(self, stop: tokio::sync::watch::Receiver<bool>) {
        let revocations = self.inner.revocations.clone();
        revocations.listen(|what| self.forget(what), stop).await;
    }
}

/// Failed-login counters in Redis, shared by every instance.
///
/// Failures are counted per account *and source* together, per source, and per account. Only
/// the first two refuse: an account's owner signing in from an address that has not been
/// failing is never locked out by someone else's guesses (the id is in every profile URL, so
/// a lock per account alone would let anyone lock anyone out). An account that is failing
/// from many sources at once is slowed instead: each of its logins waits
/// [`ACCOUNT_UNDER_ATTACK_DELAY`] first, which bounds a distributed guesser without stopping
/// the owner.
#[derive(Clone)]
pub struct LoginLimiter {
    redis: Redis,
    prefix: String,
    per_account: u32,
    per_address: u32,
    window_secs: u64,
}

/// How long every login to an account waits while the account has failed, from all sources
/// together, as often as one source may.
pub const ACCOUNT_UNDER_ATTACK_DELAY: Duration = Duration::from_secs(1);

/// Logins refused for now: retry after this many seconds.
#[derive(Debug)]
pub struct TooManyFailures {
    pub retry_after_secs: u32,
}

/// A login the limiter lets through, perhaps after a pause.
#[derive(Debug, PartialEq, Eq)]
pub struct LoginAllowed {
    /// Wait this long before checking the password (zero normally).
    pub delay: Duration,
}

impl LoginLimiter {
    pub fn new(config: &AuthConfig, redis: Redis, key_prefix: &str) -> Self {
        Self {
            redis,
            prefix: format!("{key_prefix}login:failures:"),
            per_account: config.failures_per_account,
            per_address: config.failures_per_address,
            window_secs: config.failure_window_secs,
        }
    }

    /// The counters, in the order [`LoginLimiter::check`] reads them: this account from this
    /// source, this source, this account from anywhere.
    fn keys(&self, account: i64, address: Option<IpAddr>) -> [String; 3] {
        let source = address.map_or_else(|| "unknown".to_owned(), |address| address.to_string());
        [
            format!("{}account:{account}:from:{source}", self.prefix),
            format!("{}address:{source}", self.prefix),
            format!("{}account:{account}", self.prefix),
        ]
    }

    /// Refuses when this source has failed too often on this account, or on any accounts, in
    /// its window; asks for a pause when the account fails from many sources. With Redis down,
    /// logins are let through (the hashing queue still bounds the cost).
    pub async fn check(
        &self,
        account: i64,
        address: Option<IpAddr>,
    ) -> Result<LoginAllowed, TooManyFailures> {
        let keys = self.keys(account, address);
        let outcome: Result<Vec<(Option<u32>, i64)>, CacheError> = async {
            let mut connection = self.redis.connection().await?;
            let mut pipe = redis::pipe();
            for key in &keys {
                pipe.cmd("GET").arg(key).cmd("TTL").arg(key);
            }
            let flat: Vec<redis::Value> = pipe.query_async(&mut connection).await?;
            Ok(flat
                .chunks(2)
                .map(|pair| {
                    let count = redis::from_redis_value::<Option<u32>>(pair[0].clone())
                        .ok()
                        .flatten();
                    let ttl = redis::from_redis_value::<i64>(pair[1].clone()).unwrap_or(-1);
                    (count, ttl)
                })
                .collect())
        }
        .await;
        let counts = match outcome {
            Ok(counts) => counts,
            Err(error) => {
                crate::cache::warn_unavailable("login limiter: letting the login through", &error);
                metrics::counter!("login_limiter_unavailable_total").increment(1);
                return Ok(LoginAllowed {
                    delay: Duration::ZERO,
                });
            }
        };
        let limits = [self.per_account, self.per_address];
        for ((count, ttl), limit) in counts.iter().zip(limits) {
            if count.is_some_and(|count| count >= limit) {
                metrics::counter!("login_refused_total").increment(1);
                let retry = if *ttl > 0 {
                    *ttl
                } else {
                    self.window_secs as i64
                };
                return Err(TooManyFailures {
                    retry_after_secs: u32::try_from(retry).unwrap_or(u32::MAX),
                });
            }
        }
        let under_attack = counts
            .get(2)
            .and_then(|(count, _)| *count)
            .is_some_and(|count| count >= self.per_account);
        if under_attack {
            metrics::counter!("login_delayed_total").increment(1);
        }
        Ok(LoginAllowed {
            delay: if under_attack {
                ACCOUNT_UNDER_ATTACK_DELAY
            } else {
                Duration::ZERO
            },
        })
    }

    /// Counts a failed login against the account from this source, the source, and the account.
    pub async fn failed(&self, account: i64, address: Option<IpAddr>) {
        let keys = self.keys(account, address);
        let outcome: Result<(), CacheError> = async {
            let mut connection = self.redis.connection().await?;
            let mut pipe = redis::pipe();
            for key in &keys {
                // The window starts at the first failure and is not extended by later ones.
                pipe.cmd("INCR")
                    .arg(key)
                    .ignore()
                    .cmd("EXPIRE")
                    .arg(key)
                    .arg(self.window_secs)
                    .arg("NX")
                    .ignore();
            }
            pipe.query_async::<()>(&mut connection).await?;
            Ok(())
        }
        .await;
        if let Err(error) = outcome {
            crate::cache::warn_unavailable("login limiter: a failure not counted", &error);
        }
    }
}
