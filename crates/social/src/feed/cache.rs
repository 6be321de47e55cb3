//! The feed's Redis layout. Everything here is a cache of PostgreSQL: any key may vanish
//! (expiry, FLUSHALL, a restart) and is rebuilt from the database on the next read.
//!
//! Every key starts with the deployment's namespace prefix (`agora:` by default).
//!
//! - `feed:{user}`: the user's newest post ids, one string: a flag byte (`1` = this is the
//!   whole feed, `0` = older posts may exist in the database), then 8-byte big-endian ids,
//!   newest first, at most `capacity` of them. 1000 entries take 8 KB, against ~118 KB for a
//!   sorted set of the same ids (BRIEF §3). It expires when the user has not read it for
//!   `inactive_after`: inactive users get no pushes, and their feed is rebuilt when they return.
//! - `authorposts:{author}`: the same layout for a celebrity's own newest posts, which are not
//!   pushed into followers' feeds but merged into them at read time.
//! - `celebs`: the set of celebrity authors; `celebs:version` changes when it grows.
//! - `feedcelebs:{user}`: `version|` and the packed ids of the celebrities the user follows.
//! - `feed:{user}:gone`: a hash of authors the user unfriended lately, each with the author's
//!   tick when the friendship ended. A push of a post made before that tick, still on its way
//!   when the unfriend dropped the feed, is not let back in (see `feed.lua`). Kept for
//!   [`UNFOLLOW_MEMORY`].
//! - `body:{id}`: the post's version (4 bytes, big-endian), its 8-byte author id, then the
//!   text. The version alone marks a body that changed and must be read again; an empty string
//!   marks a deleted post. A body is only ever replaced by one of the same or a newer version
//!   (`post_bodies.lua`), so a reader that loaded a post before an edit cannot write the old
//!   text back over it.

use std::time::Duration;

use agora_platform::cache::{CacheError, Redis};
use agora_platform::settings::PlatformSettings;
use redis::Script;

use super::FeedConfig;
pub use super::local::CachedPost;
use super::local::LocalPosts;
use crate::store::CURRENT_FOLLOWERS;

/// Newest-first post ids with the "complete" flag, decoded from a feed-layout string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdList {
    pub ids: Vec<i64>,
    /// True when no older entries exist beyond `ids`.
    pub complete: bool,
}

impl IdList {
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(1 + self.ids.len() * 8);
        bytes.push(if self.complete { b'1' } else { b'0' });
        for id in &self.ids {
            bytes.extend_from_slice(&id.to_be_bytes());
        }
        bytes
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let (&flag, body) = bytes.split_first()?;
        if body.len() % 8 != 0 {
            return None;
        }
        Some(Self {
            complete: flag == b'1',
            ids: body
                .chunks_exact(8)
                .map(|chunk| i64::from_be_bytes(chunk.try_into().expect("8-byte chunk")))
                .collect(),
        })
    }
}

/// How long an unfriend keeps late pushes of the old friend's posts out of the user's feed; as
/// long as ended friendships are kept for the fan-out (a post still unfanned after this is
/// let in).
pub const UNFOLLOW_MEMORY: Duration = Duration::from_secs(24 * 3600);

fn encode_post(post: Option<&CachedPost>, version: i32) -> Vec<u8> {
    match post {
        None => Vec::new(),
        Some(post) => {
            let mut bytes = Vec::with_capacity(12 + post.text.len());
            bytes.extend_from_slice(&version.to_be_bytes());
            bytes.extend_from_slice(&post.author_id.to_be_bytes());
            bytes.extend_from_slice(post.text.as_bytes());
            bytes
        }
    }
}

/// `Some(None)`: known deleted; `None`: not cached.
fn decode_post(bytes: Option<Vec<u8>>) -> Option<Option<CachedPost>> {
    let bytes = bytes?;
    if bytes.is_empty() {
        return Some(None);
    }
    // Shorter: a version alone, for a post that changed since; read it from the database.
    if bytes.len() < 12 {
        return None;
    }
    let author_id = i64::from_be_bytes(bytes[4..12].try_into().expect("8 bytes"));
    let text = String::from_utf8(bytes[12..].to_vec()).ok()?;
    Some(Some(CachedPost { author_id, text }))
}

/// What one read needs from Redis, fetched in one round trip.
#[derive(Debug, Default)]
pub struct FeedSnapshot {
    pub feed: Option<IdList>,
    pub celebs_version: i64,
    /// The celebrities the user follows, if cached for the current `celebs_version`.
    pub followed_celebs: Option<Vec<i64>>,
}

/// A slice of a cached feed (see [`FeedCache::window`]).
#[derive(Debug)]
pub struct FeedWindow {
    /// Entries in the whole feed.
    pub len: usize,
    pub complete: bool,
    /// The entries asked for that exist.
    pub ids: Vec<i64>,
    /// The feed's oldest entry, where a deeper page continues in the database.
    pub oldest: Option<i64>,
}

fn decode_ids(bytes: &[u8]) -> Vec<i64> {
    bytes
        .chunks_exact(8)
        .map(|chunk| i64::from_be_bytes(chunk.try_into().expect("8-byte chunk")))
        .collect()
}

#[derive(Clone)]
pub struct FeedCache {
    redis: Redis,
    /// Prepended to every key, so several deployments (or tests) can share one Redis.
    prefix: String,
    /// `feed.lua`: pushes and retractions.
    script: Script,
    /// `post_bodies.lua`: body writes that never go back a version.
    bodies_script: Script,
    /// Entries kept per feed.
    pub capacity: usize,
    inactive_after: Duration,
    post_ttl: Duration,
    /// Post bodies in this process's memory, in front of Redis's.
    local: LocalPosts,
}

impl FeedCache {
    /// The cache a deployment's config describes (Redis is connected on first use).
    pub fn from_config(settings: &PlatformSettings, config: &FeedConfig) -> anyhow::Result<Self> {
        let redis = Redis::new(&settings.redis)?;
        let prefix = settings.key_prefix();
        Ok(Self {
            local: LocalPosts::new(
                redis.clone(),
                &prefix,
                config.post_memory_cache_bytes,
                Duration::from_secs(config.post_memory_cache_ttl_secs),
            ),
            ..Self::new(
                redis,
                &prefix,
                config.capacity as usize,
                config.inactive_after(),
            )
        })
    }

    /// A cache without post bodies in memory.
    pub fn new(redis: Redis, prefix: &str, capacity: usize, inactive_after: Duration) -> Self {
        Self {
            local: LocalPosts::new(redis.clone(), prefix, 0, Duration::ZERO),
            redis,
            prefix: prefix.to_owned(),
            script: Script::new(include_str!("feed.lua")),
            bodies_script: Script::new(include_str!("post_bodies.lua")),
            capacity,
            inactive_after,
            post_ttl: Duration::from_secs(24 * 3600),
        }
    }

    pub fn redis(&self) -> &Redis {
        &self.redis
    }

    /// The deployment's namespace (the key prefix without its colon), for metric labels.
    pub fn namespace(&self) -> &str {
        self.prefix.trim_end_matches(':')
    }

    pub fn feed_key(&self, user_id: i64) -> String {
        format!("{}feed:{user_id}", self.prefix)
    }

    fn author_posts_key(&self, author_id: i64) -> String {
        format!("{}authorposts:{author_id}", self.prefix)
    }

    fn feed_celebs_key(&self, user_id: i64) -> String {
        format!("{}feedcelebs:{user_id}", self.prefix)
    }

    fn post_key(&self, post_id: i64) -> String {
        format!("{}body:{post_id}", self.prefix)
    }

    fn celebs_key(&self) -> String {
        format!("{}celebs", self.prefix)
    }

    fn celebs_version_key(&self) -> String {
        format!("{}celebs:version", self.prefix)
    }

    /// The user's feed, celebrity version and followed celebrities; touching the feed keeps it
    /// alive for another `inactive_after`.
    pub async fn snapshot(&self, user_id: i64) -> Result<FeedSnapshot, CacheError> {
        let mut connection = self.redis.connection().await?;
        // (feed, EXPIRE's answer, celebrity version, followed celebrities)
        type Answers = (Option<Vec<u8>>, i64, Option<i64>, Option<Vec<u8>>);
        let (feed, _, version, celebs): Answers = redis::pipe()
            .get(self.feed_key(user_id))
            .expire(self.feed_key(user_id), self.inactive_after.as_secs() as i64)
            .get(self.celebs_version_key())
            .get(self.feed_celebs_key(user_id))
            .query_async(&mut connection)
            .await?;
        let celebs_version = version.unwrap_or(0);
        let followed_celebs = celebs.and_then(|bytes| {
            let separator = bytes.iter().position(|&b| b == b'|')?;
            let version: i64 = std::str::from_utf8(&bytes[..separator])
                .ok()?
                .parse()
                .ok()?;
            (version == celebs_version).then(|| {
                bytes[separator + 1..]
                    .chunks_exact(8)
                    .map(|chunk| i64::from_be_bytes(chunk.try_into().expect("8 bytes")))
                    .collect()
            })
        });
        Ok(FeedSnapshot {
            feed: feed.as_deref().and_then(IdList::decode),
            celebs_version,
            followed_celebs,
        })
    }

    /// Entries `offset..offset + limit` of the user's feed, when that alone answers a read: the
    /// feed is cached and the user follows no celebrity (whose posts would have to be merged
    /// in). One round trip of a few hundred bytes instead of the whole 8 KB feed; touches the
    /// feed like [`FeedCache::snapshot`]. `None`: take the full path.
    ///
    /// (Fetching the bodies in the same round trip with a Lua script was tried and measured: it
    /// saved the server less CPU than it cost Redis, see docs/benchmarks/feed.md.)
    pub async fn window(
        &self,
        user_id: i64,
        offset: usize,
        limit: usize,
    ) -> Result<Option<FeedWindow>, CacheError> {
        let mut connection = self.redis.connection().await?;
        let key = self.feed_key(user_id);
        let first = 1 + offset.saturating_mul(8);
        let last = first.saturating_add(limit.saturating_mul(8)) - 1;
        // (length, flag, window, oldest entry, EXPIRE's answer, celebrity version, followed)
        type Answers = (
            usize,
            Vec<u8>,
            Vec<u8>,
            Vec<u8>,
            i64,
            Option<i64>,
            Option<Vec<u8>>,
        );
        let (len, flag, window, oldest, _, version, celebs): Answers = redis::pipe()
            .strlen(&key)
            .getrange(&key, 0, 0)
            .getrange(&key, first as isize, last as isize)
            .getrange(&key, -8, -1)
            .expire(&key, self.inactive_after.as_secs() as i64)
            .get(self.celebs_version_key())
            .get(self.feed_celebs_key(user_id))
            .query_async(&mut connection)
            .await?;
        let current = format!("{}|", version.unwrap_or(0));
        let follows_no_celebrity = celebs.is_some_and(|bytes| bytes == current.as_bytes());
        if len == 0 || (len - 1) % 8 != 0 || window.len() % 8 != 0 || !follows_no_celebrity {
            return Ok(None);
        }
        Ok(Some(FeedWindow {
            len: (len - 1) / 8,
            complete: flag == b"1",
            ids: decode_ids(&window),
            oldest: decode_ids(&oldest).first().copied(),
        }))
    }

    pub async fn store_feed(&self, user_id: i64, feed: &IdList) -> Result<(), CacheError> {
        let mut connection = self.redis.connection().await?;
        let _: () = redis::cmd("SET")
            .arg(self.feed_key(user_id))
            .arg(feed.encode())
            .arg("EX")
            .arg(self.inactive_after.as_secs())
            .query_async(&mut connection)
            .await?;
        Ok(())
    }

    pub async fn store_followed_celebs(
        &self,
        user_id: i64,
        version: i64,
        celebs: &[i64],
    ) -> Result<(), CacheError> {
        let mut value = format!("{version}|").into_bytes();
        for id in celebs {
            value.extend_from_slice(&id.to_be_bytes());
        }
        let mut connection = self.redis.connection().await?;
        let _: () = redis::cmd("SET")
            .arg(self.feed_celebs_key(user_id))
            .arg(value)
            .arg("EX")
            .arg(self.inactive_after.as_secs())
            .query_async(&mut connection)
            .await?;
        Ok(())
    }

    /// Forgets a user's feed (their friends changed): the next read rebuilds it.
    pub async fn drop_feed(&self, user_id: i64) -> Result<(), CacheError> {
        let mut connection = self.redis.connection().await?;
        let _: () = redis::cmd("DEL")
            .arg(self.feed_key(user_id))
            .arg(self.feed_celebs_key(user_id))
            .query_async(&mut connection)
            .await?;
        Ok(())
    }

    /// Forgets a user's feed because they unfriended `friend_id` at the friend's `tick`, and
    /// keeps the friend's posts made before it, still on their way, out of the rebuilt feed.
    pub async fn unfollowed(
        &self,
        user_id: i64,
        friend_id: i64,
        tick: i64,
    ) -> Result<(), CacheError> {
        let mut connection = self.redis.connection().await?;
        let feed = self.feed_key(user_id);
        let _: () = redis::Script::new(
            "redis.call('DEL', KEYS[1], KEYS[2]) \
             local known = tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0') \
             if tonumber(ARGV[2]) > known then redis.call('HSET', KEYS[3], ARGV[1], ARGV[2]) end \
             redis.call('EXPIRE', KEYS[3], ARGV[3])",
        )
        .key(&feed)
        .key(self.feed_celebs_key(user_id))
        .key(format!("{feed}:gone"))
        .arg(friend_id)
        .arg(tick)
        .arg(UNFOLLOW_MEMORY.as_secs())
        .invoke_async(&mut connection)
        .await?;
        Ok(())
    }

    /// Inserts `post_id` into those of `keys` that exist; one round trip for the whole batch.
    /// With `made_at` (the author and the author's tick at the post's commit), feeds whose
    /// owner unfriended the author after that tick are left alone.
    pub async fn push(
        &self,
        keys: &[String],
        post_id: i64,
        made_at: Option<(i64, i64)>,
    ) -> Result<u64, CacheError> {
        let (author_id, tick) = made_at.unwrap_or((0, CURRENT_FOLLOWERS));
        self.apply(keys, post_id, "push", author_id, tick).await
    }

    /// Removes `post_id` from those of `keys` that hold it.
    pub async fn retract(&self, keys: &[String], post_id: i64) -> Result<u64, CacheError> {
        self.apply(keys, post_id, "retract", 0, CURRENT_FOLLOWERS)
            .await
    }

    async fn apply(
        &self,
        keys: &[String],
        post_id: i64,
        action: &str,
        author_id: i64,
        tick: i64,
    ) -> Result<u64, CacheError> {
        if keys.is_empty() {
            return Ok(0);
        }
        let mut connection = self.redis.connection().await?;
        let mut invocation = self.script.prepare_invoke();
        for key in keys {
            invocation.key(key);
        }
        invocation
            .arg(&post_id.to_be_bytes()[..])
            .arg(action)
            .arg(self.capacity)
            .arg(author_id)
            .arg(tick);
        Ok(invocation.invoke_async(&mut connection).await?)
    }

    /// Celebrities' own recent posts, by author; `None` where not cached.
    pub async fn author_posts(&self, authors: &[i64]) -> Result<Vec<Option<IdList>>, CacheError> {
        if authors.is_empty() {
            return Ok(Vec::new());
        }
        let mut connection = self.redis.connection().await?;
        let keys: Vec<String> = authors.iter().map(|a| self.author_posts_key(*a)).collect();
        let values: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut connection)
            .await?;
        Ok(values
            .into_iter()
            .map(|value| value.as_deref().and_then(IdList::decode))
            .collect())
    }

    pub async fn store_author_posts(
        &self,
        author_id: i64,
        posts: &IdList,
    ) -> Result<(), CacheError> {
        let mut connection = self.redis.connection().await?;
        let _: () = redis::cmd("SET")
            .arg(self.author_posts_key(author_id))
            .arg(posts.encode())
            .query_async(&mut connection)
            .await?;
        Ok(())
    }

    /// Adds a post to a celebrity's recent posts, if cached (otherwise the next reader rebuilds
    /// them from the database, this post included).
    pub async fn push_author_post(&self, author_id: i64, post_id: i64) -> Result<u64, CacheError> {
        self.push(&[self.author_posts_key(author_id)], post_id, None)
            .await
    }

    pub async fn retract_author_post(
        &self,
        author_id: i64,
        post_id: i64,
    ) -> Result<u64, CacheError> {
        self.retract(&[self.author_posts_key(author_id)], post_id)
            .await
    }

    /// Adds a celebrity; bumps the version when the set grows, so readers recompute which
    /// celebrities they follow.
    pub async fn add_celebrity(&self, author_id: i64) -> Result<bool, CacheError> {
        let mut connection = self.redis.connection().await?;
        let added: i64 = redis::cmd("SADD")
            .arg(self.celebs_key())
            .arg(author_id)
            .query_async(&mut connection)
            .await?;
        if added > 0 {
            let _: i64 = redis::cmd("INCR")
                .arg(self.celebs_version_key())
                .query_async(&mut connection)
                .await?;
        }
        Ok(added > 0)
    }

    pub async fn celebrities(&self) -> Result<Vec<i64>, CacheError> {
        let mut connection = self.redis.connection().await?;
        Ok(redis::cmd("SMEMBERS")
            .arg(self.celebs_key())
            .query_async(&mut connection)
            .await?)
    }

    /// Cached bodies by post id: `Some(None)` is a known-deleted post, `None` not cached.
    pub async fn posts(&self, ids: &[i64]) -> Result<Vec<Option<Option<CachedPost>>>, CacheError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut posts = self.local.get(ids);
        let missing: Vec<usize> = (0..ids.len()).filter(|at| posts[*at].is_none()).collect();
        if missing.is_empty() {
            return Ok(posts);
        }
        let generation = self.local.generation();
        let mut connection = self.redis.connection().await?;
        let keys: Vec<String> = missing.iter().map(|at| self.post_key(ids[*at])).collect();
        let values: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
            .arg(&keys)
            .query_async(&mut connection)
            .await?;
        for (at, value) in missing.into_iter().zip(values) {
            posts[at] = decode_post(value);
        }
        self.local.insert(
            ids.iter()
                .zip(&posts)
                .filter_map(|(id, post)| Some((*id, post.clone()?))),
            generation,
        );
        Ok(posts)
    }

    /// The bodies this process keeps in memory; its `listen` task must run for them to be used.
    pub fn local_posts(&self) -> &LocalPosts {
        &self.local
    }

    /// Marks a post deleted for every reader, in Redis and in every server's memory.
    pub async fn tombstone_post(&self, post_id: i64) -> Result<(), CacheError> {
        let stored = self.store_posts(&[(post_id, None, 0)]).await;
        self.local.changed(post_id).await;
        stored
    }

    /// Caches bodies (`None` = deleted) with the version each was read at, in one round trip.
    /// A body Redis already holds at a newer version, or a deletion, is kept.
    pub async fn store_posts(
        &self,
        posts: &[(i64, Option<CachedPost>, i32)],
    ) -> Result<(), CacheError> {
        if posts.is_empty() {
            return Ok(());
        }
        let values = posts
            .iter()
            .map(|(id, post, version)| (*id, encode_post(post.as_ref(), *version)));
        self.store_post_values(values).await
    }

    async fn store_post_values(
        &self,
        values: impl Iterator<Item = (i64, Vec<u8>)>,
    ) -> Result<(), CacheError> {
        let mut invocation = self.bodies_script.prepare_invoke();
        invocation.arg(self.post_ttl.as_secs());
        for (id, value) in values {
            invocation.key(self.post_key(id)).arg(value);
        }
        let mut connection = self.redis.connection().await?;
        let _: () = invocation.invoke_async(&mut connection).await?;
        Ok(())
    }

    /// Forgets a cached body because the post changed to `version`: the next read loads it
    /// from the database, and no reader can put back a body older than it.
    pub async fn forget_post(&self, post_id: i64, version: i32) -> Result<(), CacheError> {
        let marked = self
            .store_post_values(std::iter::once((post_id, version.to_be_bytes().to_vec())))
            .await;
        self.local.changed(post_id).await;
        marked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_lists_round_trip_and_reject_garbage() {
        let list = IdList {
            ids: vec![9_000_000_000_000_000, 42, 1],
            complete: true,
        };
        let bytes = list.encode();
        assert_eq!(bytes.len(), 1 + 3 * 8);
        assert_eq!(IdList::decode(&bytes), Some(list));
        assert_eq!(IdList::decode(b""), None);
        assert_eq!(IdList::decode(b"1abc"), None);
        assert_eq!(
            IdList::decode(b"0"),
            Some(IdList {
                ids: vec![],
                complete: false
            })
        );
    }

    #[test]
    fn post_bodies_round_trip_and_tombstones_are_distinct_from_misses() {
        let post = CachedPost {
            author_id: 7,
            text: "Привет".into(),
        };
        assert_eq!(
            decode_post(Some(encode_post(Some(&post), 3))),
            Some(Some(post))
        );
        assert_eq!(decode_post(Some(encode_post(None, 3))), Some(None));
        assert_eq!(
            decode_post(Some(7i32.to_be_bytes().to_vec())),
            None,
            "a changed mark"
        );
        assert_eq!(decode_post(None), None);
    }
}
