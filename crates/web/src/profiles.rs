//! Profiles the pages show (the header's name, a home page's profile, posts' authors), kept in
//! this process for a minute. Nothing in agora changes a profile once registered (the contract
//! has no edit or delete), so an entry can only be stale if that changes; the TTL bounds it
//! even then. Without it, a home page cost three database reads the API's feed read does not
//! make (docs/benchmarks/web.md).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agora_social::SocialError;
use agora_social::rules::{Social, User};

const TTL: Duration = Duration::from_secs(60);
const CAPACITY: usize = 100_000;

#[derive(Default)]
pub struct Profiles {
    entries: Mutex<HashMap<i64, (Instant, Arc<User>)>>,
}

impl Profiles {
    fn cached(&self, ids: &[i64]) -> HashMap<i64, Arc<User>> {
        let now = Instant::now();
        let entries = self.entries.lock().expect("not poisoned");
        ids.iter()
            .filter_map(|id| {
                entries
                    .get(id)
                    .filter(|(expires, _)| now < *expires)
                    .map(|(_, user)| (*id, user.clone()))
            })
            .collect()
    }

    fn remember(&self, users: &[Arc<User>]) {
        let expires = Instant::now() + TTL;
        let mut entries = self.entries.lock().expect("not poisoned");
        if entries.len() + users.len() > CAPACITY {
            // Start over rather than track recency on every hit (as the session cache does).
            entries.clear();
        }
        for user in users {
            entries.insert(user.id, (expires, user.clone()));
        }
    }

    /// The existing users among `ids`; `reader` sees their own latest writes on a miss.
    pub async fn many(
        &self,
        social: &Social,
        ids: &[i64],
        reader: Option<i64>,
    ) -> Result<HashMap<i64, Arc<User>>, SocialError> {
        let mut found = self.cached(ids);
        let missing: Vec<i64> = ids
            .iter()
            .copied()
            .filter(|id| !found.contains_key(id))
            .collect();
        if !missing.is_empty() {
            let fetched: Vec<Arc<User>> = social
                .users_by_ids(&missing, reader)
                .await?
                .into_iter()
                .map(Arc::new)
                .collect();
            self.remember(&fetched);
            found.extend(fetched.into_iter().map(|user| (user.id, user)));
        }
        Ok(found)
    }

    /// One profile; 404 when there is no such user.
    pub async fn one(
        &self,
        social: &Social,
        id: i64,
        reader: Option<i64>,
    ) -> Result<Arc<User>, SocialError> {
        if let Some(user) = self.cached(&[id]).remove(&id) {
            return Ok(user);
        }
        let user = Arc::new(social.user(id, reader).await?);
        self.remember(std::slice::from_ref(&user));
        Ok(user)
    }
}
