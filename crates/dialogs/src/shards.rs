//! Which PostgreSQL server holds a dialog: the dialog's logical shard, then the shard map.
//!
//! The map lives in the main database with a version that every change bumps. Each instance
//! keeps a copy and re-reads it when a change is announced (Redis pub/sub), when a shard server
//! refuses a write because the logical shard is not open there (it moved), and every
//! `map_poll` as a safety net. A stale copy is therefore never trusted for a write: the shard
//! server's gate decides (see `store` and docs/dialogs.md).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use agora_platform::cache::Redis;
use agora_platform::config::DatabaseConfig;
use agora_platform::db::{self, DbError, DbPool};
use agora_platform::ids::UserId;
use agora_platform::invalidation::Invalidations;
use tokio::sync::watch;

use crate::config::DialogsConfig;

/// A dialog: its two users, the lower id first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DialogKey {
    pub low: UserId,
    pub high: UserId,
}

impl DialogKey {
    /// The dialog of two different users.
    pub fn of(a: UserId, b: UserId) -> Option<Self> {
        match a.cmp(&b) {
            std::cmp::Ordering::Less => Some(Self { low: a, high: b }),
            std::cmp::Ordering::Greater => Some(Self { low: b, high: a }),
            std::cmp::Ordering::Equal => None,
        }
    }

    /// The logical shard among `count`: a hash of both ids, so one user's dialogs spread over
    /// every shard (a celebrity's inbox is not one hot shard).
    pub fn logical_shard(&self, count: u32) -> LogicalShard {
        let hash = mix(mix(self.low.0 as u64) ^ self.high.0 as u64);
        LogicalShard((hash % u64::from(count.max(1))) as i32)
    }
}

/// SplitMix64's finalizer: a fixed, well-mixed hash, the same in every process and release
/// (the standard library's hasher is neither guaranteed stable nor meant for this).
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LogicalShard(pub i32);

/// The map as one instance last read it.
#[derive(Debug, Clone, Default)]
pub struct ShardMap {
    pub version: i64,
    /// Server name of each logical shard, by index.
    pub owners: Vec<String>,
    /// Server name to URL.
    pub servers: HashMap<String, String>,
}

impl ShardMap {
    pub fn owner(&self, shard: LogicalShard) -> Option<&str> {
        self.owners.get(shard.0 as usize).map(String::as_str)
    }

    /// Reads the map from the main database.
    pub async fn load(control: &DbPool) -> Result<Self, DbError> {
        let db = control.get().await?;
        let version: i64 = db
            .query_one("SELECT version FROM dialog_shard_map_version", &[])
            .await?
            .get(0);
        let servers = db
            .query("SELECT name, url FROM dialog_shard_servers", &[])
            .await?
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect();
        let owners = db
            .query(
                "SELECT server FROM dialog_shard_map ORDER BY logical_shard",
                &[],
            )
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect();
        Ok(Self {
            version,
            owners,
            servers,
        })
    }
}

/// A shard server's pool, by name.
#[derive(Clone)]
pub struct ShardServerPool {
    pub name: String,
    pub pool: DbPool,
}

/// Routes dialogs to shard servers. Cheap to clone.
#[derive(Clone)]
pub struct Shards {
    inner: Arc<Inner>,
}

struct Inner {
    control: DbPool,
    map: RwLock<Arc<ShardMap>>,
    /// Pools by server name, with the URL each was made for (a server whose URL changed
    /// gets a new pool).
    pools: Mutex<HashMap<String, (String, DbPool)>>,
    database: DatabaseConfig,
    pool_size: u32,
    changes: Invalidations,
    poll: std::time::Duration,
}

impl Shards {
    /// Reads the map once if it can. An empty map (no shard servers configured yet) is not an
    /// error here: requests answer 503 until `agora migrate` fills it.
    pub async fn connect(
        control: DbPool,
        database: &DatabaseConfig,
        redis: Redis,
        key_prefix: &str,
        config: &DialogsConfig,
    ) -> anyhow::Result<Self> {
        let shards = Self {
            inner: Arc::new(Inner {
                control,
                map: RwLock::default(),
                pools: Mutex::default(),
                database: database.clone(),
                pool_size: config.shard_pool_size,
                changes: Invalidations::new(redis, map_channel(key_prefix)),
                poll: config.map_poll(),
            }),
        };
        match shards.refresh().await {
            Ok(map) if map.owners.is_empty() => tracing::warn!(
                "the dialog shard map is empty: dialogs answer 503 until `agora migrate` runs \
                 with AGORA_DIALOG_SHARDS set"
            ),
            Ok(_) => {}
            // The main database may come up later: the first request retries.
            Err(error) => tracing::warn!(%error, "dialog shard map not read yet"),
        }
        Ok(shards)
    }

    /// The map as this instance knows it.
    pub fn map(&self) -> Arc<ShardMap> {
        self.inner.map.read().expect("not poisoned").clone()
    }

    /// Re-reads the map from the main database.
    pub async fn refresh(&self) -> Result<Arc<ShardMap>, DbError> {
        let map = Arc::new(ShardMap::load(&self.inner.control).await?);
        let mut current = self.inner.map.write().expect("not poisoned");
        if map.version >= current.version {
            if map.version != current.version {
                tracing::info!(version = map.version, "dialog shard map loaded");
                metrics::gauge!("dialog_shard_map_version").set(map.version as f64);
            }
            *current = map;
        }
        Ok(current.clone())
    }

    /// The logical shard count of the current map (0 before it was read).
    pub async fn logical_count(&self) -> Result<u32, DbError> {
        let mut map = self.map();
        if map.owners.is_empty() {
            map = self.refresh().await?;
        }
        Ok(map.owners.len() as u32)
    }

    /// The server that holds `shard` according to `map`.
    pub fn server(&self, map: &ShardMap, shard: LogicalShard) -> Result<ShardServerPool, DbError> {
        let name = map.owner(shard).ok_or_else(|| {
            DbError::Unavailable(format!("logical shard {} has no server", shard.0))
        })?;
        let url = map
            .servers
            .get(name)
            .ok_or_else(|| DbError::Unavailable(format!("shard server {name} is not listed")))?;
        Ok(ShardServerPool {
            name: name.to_owned(),
            pool: self.pool(name, url)?,
        })
    }

    /// The pool of a server, made on first use.
    pub fn pool(&self, name: &str, url: &str) -> Result<DbPool, DbError> {
        let mut pools = self.inner.pools.lock().expect("not poisoned");
        if let Some((made_for, pool)) = pools.get(name)
            && made_for == url
        {
            return Ok(pool.clone());
        }
        let config = DatabaseConfig {
            url: url.to_owned(),
            pool_size: self.inner.pool_size,
            ..self.inner.database.clone()
        };
        let pool = db::connect_pool(&config, "agora-dialogs")
            .map_err(|error| DbError::Unavailable(format!("{error:#}")))?;
        pools.insert(name.to_owned(), (url.to_owned(), pool.clone()));
        Ok(pool)
    }

    /// Every server that holds shards, with its pool (a user's dialog list asks them all).
    pub fn all_servers(&self, map: &ShardMap) -> Result<Vec<ShardServerPool>, DbError> {
        self.servers_where(map, |name| map.owners.iter().any(|owner| owner == name))
    }

    /// Every server listed, holding shards or not (an old server may still have outbox rows
    /// to sweep after its shards moved away).
    pub fn all_servers_listed(&self, map: &ShardMap) -> Result<Vec<ShardServerPool>, DbError> {
        self.servers_where(map, |_| true)
    }

    fn servers_where(
        &self,
        map: &ShardMap,
        keep: impl Fn(&str) -> bool,
    ) -> Result<Vec<ShardServerPool>, DbError> {
        let mut names: Vec<&String> = map.servers.keys().filter(|name| keep(name)).collect();
        names.sort();
        names
            .into_iter()
            .map(|name| {
                Ok(ShardServerPool {
                    name: name.clone(),
                    pool: self.pool(name, &map.servers[name])?,
                })
            })
            .collect()
    }

    /// Re-reads the map on every announcement and every poll period until `stop` turns true.
    pub async fn follow(self, stop: watch::Receiver<bool>) {
        let announced = Arc::new(tokio::sync::Notify::new());
        let listener = {
            let (changes, announced) = (self.inner.changes.clone(), announced.clone());
            tokio::spawn(changes.listen(move |_| announced.notify_one(), stop.clone()))
        };
        let mut stop = stop;
        loop {
            tokio::select! {
                () = announced.notified() => {}
                () = tokio::time::sleep(self.inner.poll) => {}
                _ = stop.wait_for(|stop| *stop) => break,
            }
            if let Err(error) = self.refresh().await {
                tracing::debug!(%error, "dialog shard map not re-read");
            }
        }
        let _ = listener.await;
    }
}

impl Shards {
    /// The main database, where the map and the moves in progress are kept.
    pub fn control(&self) -> &DbPool {
        &self.inner.control
    }

    /// Tells every instance that the map changed, and re-reads it here.
    pub async fn changed(&self) {
        self.inner.changes.announce(0).await;
        if let Err(error) = self.refresh().await {
            tracing::debug!(%error, "dialog shard map not re-read");
        }
    }
}

/// The Redis channel on which map changes are announced.
pub fn map_channel(key_prefix: &str) -> String {
    format!("{key_prefix}dialogs:shardmap")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dialog_is_the_same_whoever_sends() {
        let (a, b) = (UserId(5), UserId(9));
        assert_eq!(DialogKey::of(a, b), DialogKey::of(b, a));
        assert_eq!(DialogKey::of(a, a), None);
        let key = DialogKey::of(a, b).unwrap();
        assert_eq!(key.logical_shard(64), key.logical_shard(64));
    }

    #[test]
    fn one_users_dialogs_spread_over_every_shard() {
        let mut seen = std::collections::HashSet::new();
        for other in 2..2_000 {
            let key = DialogKey::of(UserId(1), UserId(other)).unwrap();
            seen.insert(key.logical_shard(64));
        }
        assert_eq!(seen.len(), 64);
    }
}
