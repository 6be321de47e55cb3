//! What the worker does with each feed event, apart from how events arrive (see `worker`).
//!
//! Every step is idempotent, so a redelivered event or task changes nothing twice: pushes skip
//! ids a feed already holds, retractions skip ids it lacks, and dropping a feed twice is the
//! same as once.

use serde::{Deserialize, Serialize};

use super::cache::FeedCache;
use crate::error::SocialError;
use crate::live::{LiveDelivery, LiveMessage, Presence};
use crate::store::FeedEventKind;
use crate::store::{CURRENT_FOLLOWERS, Store};

/// An outbox row as published by the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedEvent {
    pub outbox_id: i64,
    pub kind: FeedEventKind,
    pub actor_id: i64,
    pub subject_id: i64,
    /// `post_created`: the author's follow-clock tick at the post's commit, which decides who
    /// the post reaches; `friend_added` / `friend_removed`: the friend's tick of the change.
    /// Absent in events from before ticks existed.
    #[serde(default)]
    pub tick: Option<i64>,
    /// `post_updated`: the post's new version.
    #[serde(default)]
    pub post_version: Option<i32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FanoutAction {
    Push,
    Retract,
}

/// One batch of followers for one post: followers with ids above `after`, as of the author's
/// `tick` (see `Store::followers_after`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FanoutTask {
    pub post_id: i64,
    pub author_id: i64,
    pub action: FanoutAction,
    pub after: i64,
    #[serde(default = "current_followers")]
    pub tick: i64,
}

fn current_followers() -> i64 {
    CURRENT_FOLLOWERS
}

/// What handling an event or task leaves for the transport to send.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The next batch of followers, for the bulk lane.
    pub next: Option<FanoutTask>,
    /// Live messages for the instances where recipients are connected.
    pub live: Vec<LiveDelivery>,
}

#[derive(Clone)]
pub struct FanOut {
    store: Store,
    cache: FeedCache,
    presence: Presence,
    batch: i64,
    celebrity_followers: i64,
}

impl FanOut {
    pub(crate) fn new(
        store: Store,
        cache: FeedCache,
        presence: Presence,
        batch: u32,
        celebrity_followers: u64,
    ) -> Self {
        Self {
            store,
            cache,
            presence,
            batch: i64::from(batch),
            celebrity_followers: celebrity_followers as i64,
        }
    }

    /// Applies an event; returns the next batch when followers remain, to go on the bulk lane
    /// so that one big author never holds up the events behind it.
    pub async fn on_event(&self, event: &FeedEvent) -> Result<Outcome, SocialError> {
        let (actor, subject) = (event.actor_id, event.subject_id);
        match event.kind {
            FeedEventKind::PostCreated => {
                // Followers as of the post's commit: a later unfriend does not take the post
                // away from a live socket, and a later befriend does not bring it.
                let tick = event.tick.unwrap_or(CURRENT_FOLLOWERS);
                let followers = self
                    .store
                    .follower_count(actor, self.celebrity_followers)
                    .await?;
                if followers >= self.celebrity_followers {
                    // Pulled at read time instead: no follower's feed is touched.
                    self.cache.add_celebrity(actor).await?;
                    self.cache.push_author_post(actor, subject).await?;
                    metrics::counter!("feed_celebrity_posts_total").increment(1);
                    return Ok(Outcome {
                        next: None,
                        live: self.live_for_celebrity(actor, subject, tick).await?,
                    });
                }
                self.on_task(&FanoutTask {
                    post_id: subject,
                    author_id: actor,
                    action: FanoutAction::Push,
                    after: i64::MIN,
                    tick,
                })
                .await
            }
            FeedEventKind::PostDeleted => {
                self.cache.tombstone_post(subject).await?;
                self.cache.retract_author_post(actor, subject).await?;
                self.on_task(&FanoutTask {
                    post_id: subject,
                    author_id: actor,
                    action: FanoutAction::Retract,
                    after: i64::MIN,
                    // Whoever may hold the post now: feeds of ended friendships were dropped.
                    tick: CURRENT_FOLLOWERS,
                })
                .await
            }
            FeedEventKind::PostUpdated => {
                self.cache
                    .forget_post(subject, event.post_version.unwrap_or(0))
                    .await?;
                Ok(Outcome::default())
            }
            // The user's feed now has other sources: rebuild it on their next read.
            FeedEventKind::FriendRemoved if event.tick.is_some() => {
                let tick = event.tick.unwrap_or(CURRENT_FOLLOWERS);
                self.cache.unfollowed(actor, subject, tick).await?;
                Ok(Outcome::default())
            }
            FeedEventKind::FriendAdded | FeedEventKind::FriendRemoved => {
                self.cache.drop_feed(actor).await?;
                Ok(Outcome::default())
            }
        }
    }

    /// Updates one batch of followers' feeds in one Redis round trip, and routes a new post
    /// to the instances where those followers are online.
    pub async fn on_task(&self, task: &FanoutTask) -> Result<Outcome, SocialError> {
        let batch = self
            .store
            .followers_after(task.author_id, task.after, self.batch, task.tick)
            .await?;
        // Feeds show today's friends: a follower who has unfriended since gets the post live
        // but not in a feed, which was dropped when they unfriended.
        let keys: Vec<String> = batch
            .iter()
            .filter(|follower| !follower.ended)
            .map(|follower| self.cache.feed_key(follower.user_id))
            .collect();
        let followers: Vec<i64> = batch.iter().map(|follower| follower.user_id).collect();
        let changed = match task.action {
            FanoutAction::Push => {
                self.cache
                    .push(&keys, task.post_id, Some((task.author_id, task.tick)))
                    .await?
            }
            FanoutAction::Retract => self.cache.retract(&keys, task.post_id).await?,
        };
        metrics::counter!("feed_fanout_batches_total").increment(1);
        metrics::counter!("feed_fanout_feeds_changed_total").increment(changed);
        let live = match task.action {
            FanoutAction::Push => {
                let online = self.presence.online_among(&followers).await?;
                self.live_messages(task.post_id, online).await?
            }
            FanoutAction::Retract => Vec::new(),
        };
        let next = match followers.last() {
            Some(&last) if followers.len() as i64 == self.batch => Some(FanoutTask {
                after: last,
                ..*task
            }),
            _ => None,
        };
        Ok(Outcome { next, live })
    }

    /// A celebrity's followers are too many to list per post; their online users are few, so
    /// those are intersected with the followers instead.
    async fn live_for_celebrity(
        &self,
        author_id: i64,
        post_id: i64,
        tick: i64,
    ) -> Result<Vec<LiveDelivery>, SocialError> {
        let mut online = Vec::new();
        for instance in self.presence.live_instances().await? {
            let users = self.presence.online_users(&instance).await?;
            let mut followers = Vec::new();
            for chunk in users.chunks(1000) {
                followers.extend(self.store.followers_among(author_id, chunk, tick).await?);
            }
            if !followers.is_empty() {
                online.push((instance, followers));
            }
        }
        self.live_messages(post_id, online).await
    }

    /// One message per instance with online recipients; none when nobody is online or the
    /// post is gone.
    async fn live_messages(
        &self,
        post_id: i64,
        online: Vec<(String, Vec<i64>)>,
    ) -> Result<Vec<LiveDelivery>, SocialError> {
        if online.is_empty() {
            return Ok(Vec::new());
        }
        let Some(post) = self.store.posts_by_ids(&[post_id]).await?.pop() else {
            return Ok(Vec::new());
        };
        Ok(online
            .into_iter()
            .map(|(instance, recipients)| LiveDelivery {
                instance,
                message: LiveMessage {
                    post_id,
                    author_id: post.author_id,
                    text: post.text.clone(),
                    recipients,
                },
            })
            .collect())
    }
}
