//! Who is online where, in Redis. Keys (under the deployment's prefix):
//!
//! - `live:instances`: sorted set of server instances, scored by the last time (Unix ms) each
//!   said it was alive. Instances silent for [`INSTANCE_TTL`] are ignored, so a crashed
//!   instance stops receiving messages by itself.
//! - `live:online:{instance}`: set of the users with at least one socket on that instance. It
//!   expires [`INSTANCE_TTL`] after the instance's last refresh.
//!
//! Both are soft state: each instance rewrites its own every [`REFRESH_EVERY`], so a Redis
//! restart or FLUSHALL heals within that interval. An instance sends all its changes through one
//! task (see `consumer`), so joins, leaves and rewrites land in the order they happened.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agora_platform::cache::{CacheError, Redis};

/// How often an instance re-announces itself and its users.
pub const REFRESH_EVERY: Duration = Duration::from_secs(10);
/// How long an instance counts as alive after its last announcement.
pub const INSTANCE_TTL: Duration = Duration::from_secs(30);
/// Instances silent this long are removed from `live:instances` altogether.
const FORGET_AFTER: Duration = Duration::from_secs(3600);
/// Users per SADD/SMISMEMBER command, so one command never carries an unbounded argument list.
const CHUNK: usize = 1000;

/// One change to an instance's set of online users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Join(i64),
    Leave(i64),
}

#[derive(Clone)]
pub struct Presence {
    redis: Redis,
    prefix: String,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as i64)
}

impl Presence {
    pub fn new(redis: Redis, prefix: &str) -> Self {
        Self {
            redis,
            prefix: prefix.to_owned(),
        }
    }

    fn instances_key(&self) -> String {
        format!("{}live:instances", self.prefix)
    }

    fn online_key(&self, instance: &str) -> String {
        format!("{}live:online:{instance}", self.prefix)
    }

    /// Applies joins and leaves in the order given, in one round trip, and marks the instance
    /// alive.
    pub async fn apply(&self, instance: &str, changes: &[Change]) -> Result<(), CacheError> {
        let mut connection = self.redis.connection().await?;
        let online = self.online_key(instance);
        let mut pipe = redis::pipe();
        pipe.zadd(self.instances_key(), instance, now_ms()).ignore();
        for change in changes {
            match *change {
                Change::Join(user) => pipe.sadd(&online, user).ignore(),
                Change::Leave(user) => pipe.srem(&online, user).ignore(),
            };
        }
        pipe.expire(&online, INSTANCE_TTL.as_secs() as i64).ignore();
        let _: () = pipe.query_async(&mut connection).await?;
        Ok(())
    }

    /// Replaces the instance's users with `users` in one transaction, re-announces the
    /// instance, and forgets long-dead instances.
    pub async fn replace(&self, instance: &str, users: &[i64]) -> Result<(), CacheError> {
        let mut connection = self.redis.connection().await?;
        let online = self.online_key(instance);
        let now = now_ms();
        let mut pipe = redis::pipe();
        pipe.atomic()
            .zadd(self.instances_key(), instance, now)
            .ignore()
            .del(&online)
            .ignore();
        for chunk in users.chunks(CHUNK) {
            pipe.sadd(&online, chunk).ignore();
        }
        pipe.expire(&online, INSTANCE_TTL.as_secs() as i64)
            .ignore()
            .zrembyscore(
                self.instances_key(),
                "-inf",
                now - FORGET_AFTER.as_millis() as i64,
            )
            .ignore();
        let _: () = pipe.query_async(&mut connection).await?;
        Ok(())
    }

    /// Removes the instance and its users at once (graceful shutdown).
    pub async fn withdraw(&self, instance: &str) -> Result<(), CacheError> {
        let mut connection = self.redis.connection().await?;
        let _: () = redis::pipe()
            .zrem(self.instances_key(), instance)
            .ignore()
            .del(self.online_key(instance))
            .ignore()
            .query_async(&mut connection)
            .await?;
        Ok(())
    }

    /// Instances that announced themselves within [`INSTANCE_TTL`].
    pub async fn live_instances(&self) -> Result<Vec<String>, CacheError> {
        let mut connection = self.redis.connection().await?;
        let cutoff = now_ms() - INSTANCE_TTL.as_millis() as i64;
        Ok(redis::cmd("ZRANGEBYSCORE")
            .arg(self.instances_key())
            .arg(cutoff)
            .arg("+inf")
            .query_async(&mut connection)
            .await?)
    }

    /// Which of `users` are online on which live instance, in two round trips.
    pub async fn online_among(&self, users: &[i64]) -> Result<Vec<(String, Vec<i64>)>, CacheError> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let instances = self.live_instances().await?;
        if instances.is_empty() {
            return Ok(Vec::new());
        }
        let mut connection = self.redis.connection().await?;
        let mut pipe = redis::pipe();
        for instance in &instances {
            for chunk in users.chunks(CHUNK) {
                pipe.cmd("SMISMEMBER")
                    .arg(self.online_key(instance))
                    .arg(chunk);
            }
        }
        let answers: Vec<Vec<bool>> = pipe.query_async(&mut connection).await?;
        let mut answers = answers.into_iter();
        let mut online = Vec::new();
        for instance in instances {
            let mut here = Vec::new();
            for chunk in users.chunks(CHUNK) {
                let flags = answers.next().unwrap_or_default();
                here.extend(
                    chunk
                        .iter()
                        .zip(flags)
                        .filter_map(|(&user, is_online)| is_online.then_some(user)),
                );
            }
            if !here.is_empty() {
                online.push((instance, here));
            }
        }
        Ok(online)
    }

    /// Every user online on `instance` (for celebrities, whose followers are too many to list:
    /// the online users are intersected with the followers instead).
    pub async fn online_users(&self, instance: &str) -> Result<Vec<i64>, CacheError> {
        let mut connection = self.redis.connection().await?;
        Ok(redis::cmd("SMEMBERS")
            .arg(self.online_key(instance))
            .query_async(&mut connection)
            .await?)
    }
}
