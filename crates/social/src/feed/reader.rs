//! Reading a feed page: Redis first, PostgreSQL for what Redis lacks or when Redis is down.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::Mutex;

use agora_platform::replicas::Freshness;

use super::cache::{CachedPost, FeedCache, IdList};
use crate::error::SocialError;
use crate::store::{PostRecord, Store};

/// One post in a feed page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedPost {
    pub id: i64,
    pub author_id: i64,
    pub text: String,
}

impl From<PostRecord> for FeedPost {
    fn from(post: PostRecord) -> Self {
        Self {
            id: post.id,
            author_id: post.author_id,
            text: post.text,
        }
    }
}

/// Text a feed page carries at most (posts are never split; a page holds at least one). It
/// bounds the memory of an in-flight page whatever the posts weigh: 1000 posts of 10,000 emoji
/// would otherwise make a 40 MB page.
pub const PAGE_TEXT_BUDGET: usize = 1 << 20;

/// Post bodies fetched at once while filling a page (at most 2 MB of text).
const BODY_CHUNK: usize = 50;

/// A feed page and whether the text budget cut it short of the asked `limit`.
#[derive(Debug)]
pub struct FeedPage {
    pub posts: Vec<FeedPost>,
    pub truncated: bool,
}

#[derive(Default)]
struct PageBuilder {
    posts: Vec<FeedPost>,
    text_bytes: usize,
    truncated: bool,
}

impl PageBuilder {
    /// Adds a post if the budget allows; `false` once the page is full.
    fn add(&mut self, post: FeedPost) -> bool {
        if !self.posts.is_empty() && self.text_bytes + post.text.len() > PAGE_TEXT_BUDGET {
            self.truncated = true;
            return false;
        }
        self.text_bytes += post.text.len();
        self.posts.push(post);
        true
    }

    fn finish(self) -> FeedPage {
        FeedPage {
            posts: self.posts,
            truncated: self.truncated,
        }
    }
}

/// Ids are milliseconds << 23: a post whose transaction began up to this long before the
/// rebuild's snapshot may commit after it and is re-checked (see `rebuild`).
const REBUILD_RACE_WINDOW: i64 = 30_000 << 23;

#[derive(Clone)]
pub struct FeedReader {
    store: Store,
    cache: FeedCache,
    /// Users whose feed is being rebuilt by this instance: later readers wait for that rebuild
    /// instead of starting their own.
    rebuilding: Arc<std::sync::Mutex<HashMap<i64, Arc<Mutex<()>>>>>,
    /// Zero but in tests (`FeedConfig::test_writeback_delay_ms`).
    writeback_delay: std::time::Duration,
}

impl FeedReader {
    pub(crate) fn new(
        store: Store,
        cache: FeedCache,
        writeback_delay: std::time::Duration,
    ) -> Self {
        Self {
            store,
            cache,
            rebuilding: Arc::default(),
            writeback_delay,
        }
    }

    pub fn cache(&self) -> &FeedCache {
        &self.cache
    }

    /// Posts `offset..offset + limit` of the user's feed, newest first, cut short once the
    /// page holds [`PAGE_TEXT_BUDGET`] bytes of text.
    pub async fn page(
        &self,
        user_id: i64,
        offset: usize,
        limit: usize,
    ) -> Result<FeedPage, SocialError> {
        match self.cached_page(user_id, offset, limit).await {
            Ok(page) => {
                metrics::counter!("feed_reads_total", "source" => "cache").increment(1);
                Ok(page)
            }
            Err(SocialError::Cache(error)) => {
                // Redis is a cache: without it the feed is slower, not broken.
                agora_platform::cache::warn_unavailable(
                    "feed read: reading from the database",
                    &error,
                );
                metrics::counter!("feed_reads_total", "source" => "database").increment(1);
                let mut page = PageBuilder::default();
                self.older_posts(user_id, i64::MAX, offset, limit, &mut page)
                    .await?;
                Ok(page.finish())
            }
            Err(error) => Err(error),
        }
    }

    async fn cached_page(
        &self,
        user_id: i64,
        offset: usize,
        limit: usize,
    ) -> Result<FeedPage, SocialError> {
        let end = offset.saturating_add(limit);
        // Most readers follow no celebrity: their page is a slice of their cached feed.
        let (cached, len, complete, oldest) =
            match self.cache.window(user_id, offset, limit).await? {
                Some(window) => (window.ids, window.len, window.complete, window.oldest),
                None => {
                    let list = self.newest(user_id).await?;
                    let len = list.ids.len();
                    let oldest = list.ids.last().copied();
                    let mut ids = list.ids;
                    ids.truncate(end.min(len));
                    ids.drain(..offset.min(len));
                    (ids, len, list.complete, oldest)
                }
            };
        let mut page = PageBuilder::default();
        for chunk in cached.chunks(BODY_CHUNK) {
            for post in self.bodies(chunk).await? {
                if !page.add(post) {
                    return Ok(page.finish());
                }
            }
        }
        if end > len && !complete {
            // Deeper than the cache: continue below its oldest entry.
            let before = oldest.unwrap_or(i64::MAX);
            let skip = offset.saturating_sub(len);
            let wanted = end - offset.max(len);
            self.older_posts(user_id, before, skip, wanted, &mut page)
                .await?;
        }
        Ok(page.finish())
    }

    /// Adds up to `wanted` friends' posts older than `before` (skipping `skip`) from the
    /// database, a chunk at a time, until the page is full.
    async fn older_posts(
        &self,
        user_id: i64,
        mut before: i64,
        mut skip: usize,
        mut wanted: usize,
        page: &mut PageBuilder,
    ) -> Result<(), SocialError> {
        // Deep pages read nothing that is cached afterwards: a replica may serve them.
        let fresh = self.store.freshness_for(Some(user_id)).await;
        while wanted > 0 {
            let chunk = wanted.min(BODY_CHUNK);
            let posts = self
                .store
                .feed_posts_before(user_id, before, skip as i64, chunk as i64, fresh)
                .await?;
            skip = 0;
            let got = posts.len();
            for post in posts {
                before = post.id;
                if !page.add(post.into()) {
                    return Ok(());
                }
            }
            if got < chunk {
                break;
            }
            wanted -= got;
        }
        Ok(())
    }

    /// The user's newest ids: their pushed feed merged with the celebrities they follow.
    async fn newest(&self, user_id: i64) -> Result<IdList, SocialError> {
        let snapshot = self.cache.snapshot(user_id).await?;
        let feed = match snapshot.feed {
            Some(feed) => feed,
            None => self.rebuild_once(user_id).await?,
        };
        let celebs = match snapshot.followed_celebs {
            Some(celebs) => celebs,
            None => {
                let all = self.cache.celebrities().await?;
                let followed = self.store.friends_among(user_id, &all).await?;
                self.cache
                    .store_followed_celebs(user_id, snapshot.celebs_version, &followed)
                    .await?;
                followed
            }
        };
        if celebs.is_empty() {
            return Ok(feed);
        }
        let mut sources = vec![feed];
        for (author, cached) in celebs.iter().zip(self.cache.author_posts(&celebs).await?) {
            sources.push(match cached {
                Some(list) => list,
                None => self.rebuild_author_posts(*author).await?,
            });
        }
        Ok(merge(&sources, self.cache.capacity))
    }

    /// Rebuilds a missing feed, once per user at a time on this instance.
    async fn rebuild_once(&self, user_id: i64) -> Result<IdList, SocialError> {
        let lock = {
            let mut rebuilding = self.rebuilding.lock().expect("not poisoned");
            rebuilding.entry(user_id).or_default().clone()
        };
        let result = async {
            let _turn = lock.lock().await;
            // Whoever held the lock before us may have rebuilt it already.
            if let Some(feed) = self.cache.snapshot(user_id).await?.feed {
                return Ok(feed);
            }
            self.rebuild(user_id).await
        }
        .await;
        let mut rebuilding = self.rebuilding.lock().expect("not poisoned");
        if Arc::strong_count(&lock) == 2 {
            rebuilding.remove(&user_id); // nobody else is waiting on it
        }
        result
    }

    /// Loads the feed from PostgreSQL and stores it, without celebrities' posts (merged at read
    /// time, like the pushes that skip them). A post committed while this ran may have
    /// been pushed before the feed existed (and so skipped); re-reading the newest posts after
    /// storing, and pushing them (idempotently), closes that gap.
    ///
    /// The long read may run on a replica that has the user's own last write (a friendship
    /// they just made, say). Friends' posts it has not replayed yet are the same gap, wider:
    /// the re-read runs on the primary, so it closes that too for the newest posts.
    pub async fn rebuild(&self, user_id: i64) -> Result<IdList, SocialError> {
        // Labelled so that deployments sharing one Prometheus (or tests sharing one process)
        // can tell their rebuilds apart.
        metrics::counter!("feed_rebuilds_total", "namespace" => self.cache.namespace().to_owned())
            .increment(1);
        let capacity = self.cache.capacity;
        let celebrities = self.cache.celebrities().await?;
        let fresh = self.store.freshness_for(Some(user_id)).await;
        let ids = self
            .store
            .feed_ids(user_id, capacity as i64, &celebrities, fresh)
            .await?;
        let feed = IdList {
            complete: ids.len() < capacity,
            ids,
        };
        self.cache.store_feed(user_id, &feed).await?;
        let newest = feed.ids.first().copied().unwrap_or(0);
        let recent = self
            .store
            .feed_ids(user_id, 64, &celebrities, Freshness::Primary)
            .await?;
        let key = [self.cache.feed_key(user_id)];
        for id in recent
            .into_iter()
            .filter(|id| *id > newest - REBUILD_RACE_WINDOW && !feed.ids.contains(id))
        {
            self.cache.push(&key, id, None).await?;
        }
        Ok(feed)
    }

    async fn rebuild_author_posts(&self, author_id: i64) -> Result<IdList, SocialError> {
        let capacity = self.cache.capacity;
        let ids = self
            .store
            .author_post_ids(author_id, capacity as i64)
            .await?;
        let list = IdList {
            complete: ids.len() < capacity,
            ids,
        };
        self.cache.store_author_posts(author_id, &list).await?;
        Ok(list)
    }

    /// Bodies for `ids` in order, from the post cache or the database; deleted posts drop out.
    async fn bodies(&self, ids: &[i64]) -> Result<Vec<FeedPost>, SocialError> {
        let cached = self.cache.posts(ids).await?;
        let missing: Vec<i64> = ids
            .iter()
            .zip(&cached)
            .filter(|(_, body)| body.is_none())
            .map(|(id, _)| *id)
            .collect();
        let mut loaded: HashMap<i64, (CachedPost, i32)> = HashMap::new();
        if !missing.is_empty() {
            for post in self.store.posts_by_ids(&missing).await? {
                loaded.insert(
                    post.id,
                    (
                        CachedPost {
                            author_id: post.author_id,
                            text: post.text,
                        },
                        post.version,
                    ),
                );
            }
            if !self.writeback_delay.is_zero() {
                tokio::time::sleep(self.writeback_delay).await;
            }
            let fill: Vec<(i64, Option<CachedPost>, i32)> = missing
                .iter()
                .map(|id| match loaded.get(id) {
                    Some((post, version)) => (*id, Some(post.clone()), *version),
                    None => (*id, None, 0),
                })
                .collect();
            self.cache.store_posts(&fill).await?;
        }
        Ok(ids
            .iter()
            .zip(cached)
            .filter_map(|(id, body)| {
                let body = match body {
                    Some(known) => known,
                    None => loaded.remove(id).map(|(post, _)| post),
                }?;
                Some(FeedPost {
                    id: *id,
                    author_id: body.author_id,
                    text: body.text,
                })
            })
            .collect())
    }
}

/// Merges newest-first lists into one, newest first, without duplicates, at most `capacity`
/// long. An incomplete source only vouches for ids down to its oldest entry, so the merge stops
/// there: below it, posts of that source may be missing, and the database must answer.
pub fn merge(sources: &[IdList], capacity: usize) -> IdList {
    let cutoff = sources
        .iter()
        .filter(|source| !source.complete)
        .map(|source| source.ids.last().copied().unwrap_or(i64::MAX))
        .max();
    let mut ids: Vec<i64> = sources
        .iter()
        .flat_map(|source| source.ids.iter().copied())
        .filter(|id| cutoff.is_none_or(|cutoff| *id >= cutoff))
        .collect();
    ids.sort_unstable_by(|a, b| b.cmp(a));
    ids.dedup();
    let truncated = ids.len() > capacity;
    ids.truncate(capacity);
    IdList {
        complete: cutoff.is_none() && !truncated,
        ids,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(ids: &[i64], complete: bool) -> IdList {
        IdList {
            ids: ids.to_vec(),
            complete,
        }
    }

    #[test]
    fn merge_interleaves_dedupes_and_caps() {
        let merged = merge(&[list(&[9, 5, 3], true), list(&[8, 5, 1], true)], 10);
        assert_eq!(merged, list(&[9, 8, 5, 3, 1], true));
        let capped = merge(&[list(&[9, 5, 3], true), list(&[8, 5, 1], true)], 3);
        assert_eq!(capped, list(&[9, 8, 5], false));
    }

    #[test]
    fn merge_stops_at_the_oldest_entry_an_incomplete_source_vouches_for() {
        // The feed lost everything older than 5; a celebrity's 2 and 1 cannot be placed
        // without knowing what the feed had between them.
        let merged = merge(&[list(&[9, 5], false), list(&[8, 2, 1], true)], 10);
        assert_eq!(merged, list(&[9, 8, 5], false));
    }
}
