//! The sockets of one server instance, by user, and delivery to them.
//!
//! Each socket has a bounded queue of `socket_buffer` posts. Delivery never waits: a socket
//! whose queue is full is cut loose on the spot (its session then closes it with 1013, "try
//! again later", and the client reconnects with `since`), so one slow reader can neither stall
//! the others nor grow the server's memory.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot, watch};

use super::presence::Presence;

/// Presence changes waiting for the instance's presence task (see `consumer`); beyond this,
/// leaves are skipped (the next rewrite drops them) and joins wait.
const PRESENCE_QUEUE: usize = 10_000;

/// What a hub asks its presence task to record in Redis, in order.
#[derive(Debug)]
pub enum PresenceCommand {
    /// The user now has a socket here; `done` says whether Redis has it.
    Join {
        user: i64,
        done: oneshot::Sender<bool>,
    },
    /// The user's last socket here closed.
    Leave(i64),
}

/// A post on its way to sockets; shared, not copied, between recipients.
#[derive(Debug, PartialEq, Eq)]
pub struct LivePost {
    pub id: i64,
    pub author_id: i64,
    pub text: String,
}

struct Subscriber {
    id: u64,
    sender: mpsc::Sender<Arc<LivePost>>,
    /// The session (its stored token hash) the socket was opened with.
    session: Arc<[u8]>,
    /// Fired when that session is revoked.
    revoke: Option<oneshot::Sender<()>>,
}

struct Inner {
    instance: String,
    presence: Presence,
    buffer: usize,
    /// Sockets one user may hold here.
    per_user: usize,
    sockets: Mutex<HashMap<i64, Vec<Subscriber>>>,
    next_id: AtomicU64,
    /// Turns true when the server shuts down: sessions then close their sockets.
    closing: watch::Sender<bool>,
    /// Bumped when posts may have been missed (the live queue or presence was interrupted):
    /// sessions then close with 1013 so their clients replay.
    interruptions: watch::Sender<u64>,
    commands: mpsc::Sender<PresenceCommand>,
    /// Taken once, by the presence task.
    command_receiver: Mutex<Option<mpsc::Receiver<PresenceCommand>>>,
}

/// Cheap to clone; every clone is the same hub.
#[derive(Clone)]
pub struct LiveHub {
    inner: Arc<Inner>,
}

/// What one delivery did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    /// Sockets that got the post.
    pub sockets: usize,
    /// Sockets cut loose because their queue was full.
    pub overflowed: usize,
}

/// One socket's registration: its queue of posts. Dropping it unregisters the socket.
pub struct Subscription {
    hub: LiveHub,
    user: i64,
    id: u64,
    pub posts: mpsc::Receiver<Arc<LivePost>>,
    /// Resolves with `Ok` when the socket's session is revoked (signed out, or ended by a
    /// newer login beyond the per-user limit).
    pub revoked: oneshot::Receiver<()>,
}

impl LiveHub {
    pub fn new(instance: String, presence: Presence, buffer: usize, per_user: usize) -> Self {
        let (commands, command_receiver) = mpsc::channel(PRESENCE_QUEUE);
        Self {
            inner: Arc::new(Inner {
                instance,
                presence,
                buffer,
                per_user: per_user.max(1),
                sockets: Mutex::default(),
                next_id: AtomicU64::new(0),
                closing: watch::Sender::new(false),
                interruptions: watch::Sender::new(0),
                commands,
                command_receiver: Mutex::new(Some(command_receiver)),
            }),
        }
    }

    /// The presence commands, for the one task that applies them.
    pub fn take_presence_commands(&self) -> Option<mpsc::Receiver<PresenceCommand>> {
        self.inner
            .command_receiver
            .lock()
            .expect("not poisoned")
            .take()
    }

    /// Asks every session to close with 1013 so its client replays what it may have missed.
    pub fn interrupt_all(&self) {
        self.inner
            .interruptions
            .send_modify(|generation| *generation += 1);
    }

    /// Changes when [`LiveHub::interrupt_all`] is called.
    pub fn interruptions(&self) -> watch::Receiver<u64> {
        self.inner.interruptions.subscribe()
    }

    pub fn is_closing(&self) -> bool {
        *self.inner.closing.borrow()
    }

    pub fn instance(&self) -> &str {
        &self.inner.instance
    }

    pub fn presence(&self) -> &Presence {
        &self.inner.presence
    }

    /// Asks every session to close its socket (the server is shutting down).
    pub fn close_all(&self) {
        self.inner.closing.send_replace(true);
    }

    /// Resolves when [`LiveHub::close_all`] is called.
    pub fn closing(&self) -> watch::Receiver<bool> {
        self.inner.closing.subscribe()
    }

    /// Registers a socket of `user`. The caller announces the user in Redis (see
    /// [`LiveHub::announce`]) once registered, so no post routed after it is missed.
    /// `None` when the user already holds as many sockets here as one user may.
    pub fn subscribe(&self, user: i64, session: Arc<[u8]>) -> Option<Subscription> {
        let (sender, posts) = mpsc::channel(self.inner.buffer);
        let (revoke, revoked) = oneshot::channel();
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let mut sockets = self.sockets();
        let mine = sockets.entry(user).or_default();
        if mine.len() >= self.inner.per_user {
            drop(sockets);
            metrics::counter!("live_sockets_refused_total", "reason" => "per_user").increment(1);
            return None;
        }
        mine.push(Subscriber {
            id,
            sender,
            session,
            revoke: Some(revoke),
        });
        drop(sockets);
        metrics::gauge!("live_sockets").increment(1.0);
        Some(Subscription {
            hub: self.clone(),
            user,
            id,
            posts,
            revoked,
        })
    }

    /// Sockets one user may hold here.
    pub fn sockets_per_user(&self) -> usize {
        self.inner.per_user
    }

    /// The sessions sockets here were opened with: `user`'s, or everyone's.
    pub fn sessions(&self, user: Option<i64>) -> Vec<Arc<[u8]>> {
        let sockets = self.sockets();
        let mut sessions: Vec<Arc<[u8]>> = match user {
            Some(user) => sockets
                .get(&user)
                .into_iter()
                .flatten()
                .map(|subscriber| subscriber.session.clone())
                .collect(),
            None => sockets
                .values()
                .flatten()
                .map(|subscriber| subscriber.session.clone())
                .collect(),
        };
        drop(sockets);
        sessions.sort_unstable();
        sessions.dedup();
        sessions
    }

    /// Tells the sockets opened with any of `sessions` that their session is over; returns how
    /// many were told.
    pub fn end_sessions(&self, sessions: &[Arc<[u8]>]) -> usize {
        if sessions.is_empty() {
            return 0;
        }
        let mut ended = 0;
        for subscriber in self.sockets().values_mut().flatten() {
            if sessions.contains(&subscriber.session)
                && let Some(revoke) = subscriber.revoke.take()
            {
                let _ = revoke.send(());
                ended += 1;
            }
        }
        ended
    }

    /// Records `user` as online on this instance and waits until Redis has it, so posts
    /// routed from then on reach the user's sockets. False when it could not be recorded (Redis
    /// is down) or the server is shutting down.
    pub async fn announce(&self, user: i64) -> bool {
        if self.is_closing() {
            return false;
        }
        let (done, recorded) = oneshot::channel();
        if self
            .inner
            .commands
            .send(PresenceCommand::Join { user, done })
            .await
            .is_err()
        {
            return false;
        }
        recorded.await.unwrap_or(false)
    }

    /// Hands `post` to every socket of `recipients` on this instance.
    pub fn deliver(&self, post: Arc<LivePost>, recipients: &[i64]) -> Delivered {
        let mut delivered = Delivered::default();
        let mut sockets = self.sockets();
        for user in recipients {
            let Some(subscribers) = sockets.get_mut(user) else {
                continue;
            };
            subscribers.retain(
                |subscriber| match subscriber.sender.try_send(post.clone()) {
                    Ok(()) => {
                        delivered.sockets += 1;
                        true
                    }
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        delivered.overflowed += 1;
                        false
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => false,
                },
            );
            if subscribers.is_empty() {
                sockets.remove(user);
            }
        }
        drop(sockets);
        metrics::counter!("live_posts_delivered_total").increment(delivered.sockets as u64);
        if delivered.overflowed > 0 {
            metrics::counter!("live_sockets_overflowed_total")
                .increment(delivered.overflowed as u64);
        }
        delivered
    }

    /// Users with at least one socket here.
    pub fn users(&self) -> Vec<i64> {
        self.sockets().keys().copied().collect()
    }

    pub fn is_connected(&self, user: i64) -> bool {
        self.sockets().contains_key(&user)
    }

    pub fn socket_count(&self) -> usize {
        self.sockets().values().map(Vec::len).sum()
    }

    fn sockets(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Vec<Subscriber>>> {
        self.inner.sockets.lock().expect("not poisoned")
    }

    /// Removes one socket; true when the user has none left here.
    fn unsubscribe(&self, user: i64, id: u64) -> bool {
        let mut sockets = self.sockets();
        if let Some(subscribers) = sockets.get_mut(&user) {
            subscribers.retain(|subscriber| subscriber.id != id);
            if subscribers.is_empty() {
                sockets.remove(&user);
            }
        }
        !sockets.contains_key(&user)
    }
}

impl Subscription {
    pub fn user(&self) -> i64 {
        self.user
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        metrics::gauge!("live_sockets").decrement(1.0);
        if self.hub.unsubscribe(self.user, self.id) {
            // A full queue only delays the removal: the next rewrite of the set drops the user.
            let _ = self
                .hub
                .inner
                .commands
                .try_send(PresenceCommand::Leave(self.user));
        }
    }
}

#[cfg(test)]
mod tests {
    use agora_platform::cache::{Redis, RedisConfig};

    use super::*;

    fn hub(buffer: usize) -> LiveHub {
        // Never contacted by these tests' assertions: presence updates fail quietly.
        let redis = Redis::new(&RedisConfig::for_url("redis://127.0.0.1:1")).unwrap();
        LiveHub::new("test".into(), Presence::new(redis, "t:"), buffer, 3)
    }

    fn session() -> Arc<[u8]> {
        Arc::from(&b"a session"[..])
    }

    #[tokio::test]
    async fn ending_a_session_tells_its_sockets_only() {
        let hub = hub(2);
        let signed_out: Arc<[u8]> = Arc::from(&b"signed out"[..]);
        let mut first = hub.subscribe(10, signed_out.clone()).unwrap();
        let mut second = hub.subscribe(10, signed_out.clone()).unwrap();
        let mut other = hub.subscribe(10, session()).unwrap();
        assert_eq!(hub.sessions(Some(10)).len(), 2);
        assert_eq!(hub.end_sessions(&[signed_out]), 2);
        assert!((&mut first.revoked).await.is_ok());
        assert!((&mut second.revoked).await.is_ok());
        assert!(other.revoked.try_recv().is_err());
    }

    #[tokio::test]
    async fn a_user_holds_at_most_the_limit_and_others_are_not_affected() {
        let hub = hub(2);
        let held: Vec<Subscription> = (0..3)
            .map(|_| hub.subscribe(10, session()).unwrap())
            .collect();
        assert!(hub.subscribe(10, session()).is_none(), "a fourth socket");
        assert!(hub.subscribe(11, session()).is_some(), "another user");
        drop(held);
        assert!(hub.subscribe(10, session()).is_some(), "room again");
    }

    fn post(id: i64) -> Arc<LivePost> {
        Arc::new(LivePost {
            id,
            author_id: 1,
            text: "hi".into(),
        })
    }

    #[tokio::test]
    async fn delivers_to_every_socket_of_recipients_only() {
        let hub = hub(4);
        let mut first = hub.subscribe(10, session()).unwrap();
        let mut second = hub.subscribe(10, session()).unwrap();
        let mut other = hub.subscribe(20, session()).unwrap();
        let delivered = hub.deliver(post(1), &[10, 30]);
        assert_eq!(delivered.sockets, 2);
        assert_eq!(first.posts.recv().await.unwrap().id, 1);
        assert_eq!(second.posts.recv().await.unwrap().id, 1);
        assert!(other.posts.try_recv().is_err());
    }

    #[tokio::test]
    async fn a_full_socket_is_cut_loose_without_blocking_others() {
        let hub = hub(2);
        let mut slow = hub.subscribe(10, session()).unwrap();
        let mut fast = hub.subscribe(11, session()).unwrap();
        for id in 1..=2 {
            hub.deliver(post(id), &[10, 11]);
            assert_eq!(fast.posts.recv().await.unwrap().id, id);
        }
        let third = hub.deliver(post(3), &[10, 11]);
        assert_eq!(
            third,
            Delivered {
                sockets: 1,
                overflowed: 1
            }
        );
        assert!(!hub.is_connected(10));
        // The slow socket drains what it had, then learns it was cut loose.
        assert_eq!(slow.posts.recv().await.unwrap().id, 1);
        assert_eq!(slow.posts.recv().await.unwrap().id, 2);
        assert!(slow.posts.recv().await.is_none());
        assert_eq!(fast.posts.recv().await.unwrap().id, 3);
    }

    #[tokio::test]
    async fn dropping_a_subscription_unregisters_it() {
        let hub = hub(2);
        let first = hub.subscribe(10, session()).unwrap();
        let second = hub.subscribe(10, session()).unwrap();
        drop(first);
        assert!(hub.is_connected(10));
        assert_eq!(hub.socket_count(), 1);
        drop(second);
        assert!(!hub.is_connected(10));
        assert!(hub.users().is_empty());
    }
}
