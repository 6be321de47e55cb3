//! Announcing, across instances, that something an instance may hold in memory has changed.
//!
//! An in-process cache is only safe if it hears of every change. Changes are announced on a
//! Redis pub/sub channel; a cache is used only while its instance is subscribed, and it is
//! emptied whenever a subscription starts, since messages sent while it was away are lost.
//! A generation number, bumped on every message and every (re)subscription, lets a cache refuse
//! a value it fetched before a change was announced ([`Invalidations::generation`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt as _;

use crate::cache::{CacheError, Redis};

/// What an announcement asks listeners to drop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forget {
    /// Entries of this key (a user, a post: the channel decides).
    Key(i64),
    /// Everything: a message was unreadable, or some may have been missed.
    All,
}

/// One invalidation channel. Cheap to clone.
#[derive(Clone)]
pub struct Invalidations {
    inner: Arc<Inner>,
}

struct Inner {
    redis: Redis,
    channel: String,
    listening: AtomicBool,
    generation: AtomicU64,
}

impl Invalidations {
    pub fn new(redis: Redis, channel: String) -> Self {
        Self {
            inner: Arc::new(Inner {
                redis,
                channel,
                listening: AtomicBool::new(false),
                generation: AtomicU64::new(0),
            }),
        }
    }

    /// Subscribed right now: a cache that relies on this channel may be used.
    pub fn listening(&self) -> bool {
        self.inner.listening.load(Ordering::Acquire)
    }

    /// Changes every time something may have been invalidated. A value fetched while the
    /// generation was `g` may be cached only if it is still `g` once the value is in hand.
    pub fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }

    /// Acts as if a subscription had just started (the generation moves, caches may be used),
    /// so caches built on this channel can be unit-tested without Redis.
    #[doc(hidden)]
    pub fn simulate_subscription(&self) {
        self.bump();
        self.inner.listening.store(true, Ordering::Release);
    }

    fn bump(&self) {
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Tells every listening instance that `key` changed. Call after the change is durable.
    /// A failure is logged: listeners then keep the old entry until it expires.
    pub async fn announce(&self, key: i64) {
        // This instance forgets at once, even if Redis is away.
        self.bump();
        let outcome = async {
            let mut connection = self.inner.redis.connection().await?;
            redis::cmd("PUBLISH")
                .arg(&self.inner.channel)
                .arg(key)
                .query_async::<i64>(&mut connection)
                .await
                .map_err(CacheError::from)
        }
        .await;
        if let Err(error) = outcome {
            metrics::counter!("invalidations_unannounced_total").increment(1);
            tracing::warn!(%error, channel = %self.inner.channel, key,
                "could not announce a change; other instances keep their copy until it expires");
        }
    }

    /// Hears announcements until `stop` turns true, calling `forget` for each (and with
    /// [`Forget::All`] whenever some may have been missed). Runs for the life of the server.
    pub async fn listen(
        self,
        forget: impl Fn(Forget) + Send + Sync,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            tokio::select! {
                () = self.listen_once(&forget) => {}
                _ = stop.wait_for(|stop| *stop) => return,
            }
            self.inner.listening.store(false, Ordering::Release);
            self.bump();
            forget(Forget::All);
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stop.wait_for(|stop| *stop) => return,
            }
        }
    }

    /// One subscription, until it breaks.
    async fn listen_once(&self, forget: &(impl Fn(Forget) + Send + Sync)) {
        let channel = &self.inner.channel;
        let mut pubsub = match self.inner.redis.pubsub().await {
            Ok(pubsub) => pubsub,
            Err(error) => {
                tracing::debug!(%error, %channel, "cannot subscribe yet");
                return;
            }
        };
        if let Err(error) = pubsub.subscribe(channel).await {
            tracing::warn!(%error, %channel, "subscribe failed");
            return;
        }
        // Whatever was cached before may have missed an announcement.
        self.bump();
        forget(Forget::All);
        self.inner.listening.store(true, Ordering::Release);
        tracing::debug!(%channel, "listening for changes");
        let mut messages = pubsub.on_message();
        while let Some(message) = messages.next().await {
            self.bump();
            forget(match message.get_payload::<i64>() {
                Ok(key) => Forget::Key(key),
                Err(_) => Forget::All,
            });
        }
        tracing::warn!(%channel, "subscription lost; caches bypassed until it is back");
    }
}
