//! Post bodies kept in the server's memory, in front of the Redis post cache.
//!
//! A feed page needs the bodies of its posts, and the same recent posts are in the pages of
//! every friend of their authors: asking Redis for them on every read was a second round trip
//! per page and a third of Redis's CPU (docs/benchmarks/feed.md). Here they are served from a
//! map in the process. A body changes only when its author edits or deletes the post; the
//! change is announced to every instance ([`Invalidations`]), which drops its copy, and the
//! map is not used while an instance cannot hear announcements. Entries also expire after a
//! TTL, which bounds what one lost announcement can cost.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agora_platform::cache::Redis;
use agora_platform::invalidation::{Forget, Invalidations};

/// Bookkeeping bytes counted per entry besides its text.
const ENTRY_OVERHEAD: usize = 64;

/// A cached post body; `None` text marks a deleted post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedPost {
    pub author_id: i64,
    pub text: String,
}

/// Cheap to clone.
#[derive(Clone)]
pub struct LocalPosts {
    inner: Arc<Inner>,
}

struct Inner {
    table: Mutex<Table>,
    ttl: Duration,
    max_bytes: usize,
    changes: Invalidations,
}

#[derive(Default)]
struct Table {
    entries: HashMap<i64, Entry>,
    bytes: usize,
}

struct Entry {
    /// `None`: the post is deleted.
    post: Option<CachedPost>,
    until: Instant,
}

impl Entry {
    fn bytes(&self) -> usize {
        ENTRY_OVERHEAD + self.post.as_ref().map_or(0, |post| post.text.len())
    }
}

impl LocalPosts {
    /// A map of at most `max_bytes` of text (0 turns it off) that hears of changed posts on
    /// `<prefix>posts:changed`. It serves nothing until [`LocalPosts::listen`] runs.
    pub fn new(redis: Redis, key_prefix: &str, max_bytes: usize, ttl: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                table: Mutex::default(),
                ttl,
                max_bytes,
                changes: Invalidations::new(redis, format!("{key_prefix}posts:changed")),
            }),
        }
    }

    fn enabled(&self) -> bool {
        self.inner.max_bytes > 0 && self.inner.changes.listening()
    }

    /// Cached bodies for `ids`, in order: `Some(None)` for a deleted post, `None` if unknown.
    pub fn get(&self, ids: &[i64]) -> Vec<Option<Option<CachedPost>>> {
        if !self.enabled() {
            return vec![None; ids.len()];
        }
        let now = Instant::now();
        let table = self.inner.table.lock().expect("not poisoned");
        ids.iter()
            .map(|id| {
                table
                    .entries
                    .get(id)
                    .filter(|entry| now < entry.until)
                    .map(|entry| entry.post.clone())
            })
            .collect()
    }

    /// The generation to pass to [`LocalPosts::insert`]: read it before fetching bodies.
    pub fn generation(&self) -> u64 {
        self.inner.changes.generation()
    }

    /// Keeps bodies fetched since `generation` was read, unless a change was announced since
    /// (they may predate it).
    pub fn insert(
        &self,
        posts: impl IntoIterator<Item = (i64, Option<CachedPost>)>,
        generation: u64,
    ) {
        if !self.enabled() {
            return;
        }
        let until = Instant::now() + self.inner.ttl;
        let mut table = self.inner.table.lock().expect("not poisoned");
        // Checked under the lock that `forget` takes after the generation moves.
        if self.inner.changes.generation() != generation {
            return;
        }
        for (id, post) in posts {
            let entry = Entry { post, until };
            let bytes = entry.bytes();
            if table.bytes + bytes > self.inner.max_bytes {
                let now = Instant::now();
                table.entries.retain(|_, entry| now < entry.until);
                table.bytes = table.entries.values().map(Entry::bytes).sum();
                if table.bytes + bytes > self.inner.max_bytes {
                    // Every entry is fresh: start over rather than track recency on every hit.
                    table.entries.clear();
                    table.bytes = 0;
                }
                if bytes > self.inner.max_bytes {
                    continue;
                }
            }
            table.bytes += bytes;
            if let Some(old) = table.entries.insert(id, entry) {
                table.bytes -= old.bytes();
            }
        }
    }

    fn forget(&self, what: Forget) {
        let mut table = self.inner.table.lock().expect("not poisoned");
        match what {
            Forget::Key(id) => {
                if let Some(old) = table.entries.remove(&id) {
                    table.bytes -= old.bytes();
                }
            }
            Forget::All => *table = Table::default(),
        }
    }

    /// Tells every instance (this one included) that a post changed. Call once the change is
    /// in the database and the Redis copy is gone.
    pub async fn changed(&self, id: i64) {
        self.forget(Forget::Key(id));
        self.inner.changes.announce(id).await;
    }

    /// Hears of changed posts until `stop` turns true. Runs for the life of the server.
    pub async fn listen(self, stop: tokio::sync::watch::Receiver<bool>) {
        if self.inner.max_bytes == 0 {
            return;
        }
        let changes = self.inner.changes.clone();
        changes.listen(|what| self.forget(what), stop).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(text: &str) -> Option<CachedPost> {
        Some(CachedPost {
            author_id: 1,
            text: text.into(),
        })
    }

    fn listening(max_bytes: usize) -> LocalPosts {
        let redis = Redis::new(&agora_platform::cache::RedisConfig::for_url(
            "redis://127.0.0.1:1",
        ))
        .expect("valid url");
        let local = LocalPosts::new(redis, "t:", max_bytes, Duration::from_secs(60));
        local.inner.changes.simulate_subscription();
        local
    }

    #[test]
    fn serves_what_it_holds_and_forgets_changed_posts() {
        let local = listening(1 << 20);
        let generation = local.generation();
        local.insert([(1, post("one")), (2, None)], generation);
        assert_eq!(
            local.get(&[1, 2, 3]),
            vec![Some(post("one")), Some(None), None]
        );
        local.forget(Forget::Key(1));
        assert_eq!(local.get(&[1]), vec![None]);
    }

    #[test]
    fn refuses_bodies_fetched_before_a_change() {
        let local = listening(1 << 20);
        let generation = local.generation();
        local.inner.changes.simulate_subscription(); // a change was heard meanwhile
        local.insert([(1, post("old"))], generation);
        assert_eq!(local.get(&[1]), vec![None]);
    }

    #[test]
    fn stays_within_its_byte_budget() {
        let local = listening(10 * (ENTRY_OVERHEAD + 100));
        for id in 0..100 {
            local.insert([(id, post(&"x".repeat(100)))], local.generation());
            let table = local.inner.table.lock().unwrap();
            assert!(table.bytes <= local.inner.max_bytes);
            assert_eq!(
                table.bytes,
                table.entries.values().map(Entry::bytes).sum::<usize>()
            );
        }
    }
}
