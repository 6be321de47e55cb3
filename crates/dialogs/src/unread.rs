//! Unread counters in Redis, per dialog and per user.
//!
//! A counter is not a number that is incremented, but the set of a dialog's unread message ids
//! (a sorted set per reader and sender, scored by id), so applying the same message twice
//! changes nothing and messages may be applied in any order: the send's fast path and the
//! outbox sweeper can both apply it. Beside it, per reader, the id each dialog was read up to
//! (a message at or below it is never counted) and the set of senders with unread messages
//! (for the total). The read positions are also stored durably with the dialog on its shard,
//! which is what `repair` rebuilds everything from.

use agora_platform::cache::{CacheError, Redis};
use agora_platform::ids::UserId;
use redis::Script;

use crate::store::{ReadPosition, Unread};

/// Unread ids kept per dialog: a counter shows at most this many.
pub const CAP: i64 = 1000;

/// Adds one unread message unless the reader has read past it.
/// KEYS: unread zset, read-upto hash, senders set. ARGV: message id, sender, cap.
const ADD: &str = r#"
local upto = tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '0')
if tonumber(ARGV[1]) <= upto then return 0 end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[1])
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -tonumber(ARGV[3]) - 1)
redis.call('SADD', KEYS[3], ARGV[2])
return 1
"#;

/// Marks a dialog read up to a message.
/// KEYS: unread zset, read-upto hash, senders set. ARGV: upto, sender.
const READ: &str = r#"
local upto = tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '0')
if tonumber(ARGV[1]) > upto then
  redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
  upto = tonumber(ARGV[1])
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', upto)
if redis.call('ZCARD', KEYS[1]) == 0 then redis.call('SREM', KEYS[3], ARGV[2]) end
return 0
"#;

/// A reader's counters: pairs of sender and count. KEYS: senders set. ARGV: the unread zset
/// key prefix (followed by the sender).
const COUNTS: &str = r#"
local senders = redis.call('SMEMBERS', KEYS[1])
local out = {}
for _, sender in ipairs(senders) do
  local n = redis.call('ZCARD', ARGV[1] .. sender)
  if n > 0 then
    table.insert(out, sender)
    table.insert(out, n)
  end
end
return out
"#;

/// Sets one dialog side as the shards have it. KEYS: unread zset, read-upto hash, senders
/// set. ARGV: upto, sender, then the unread ids.
const RESET: &str = r#"
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
if #ARGV > 2 then
  for i = 3, #ARGV do redis.call('ZADD', KEYS[1], ARGV[i], ARGV[i]) end
  redis.call('SADD', KEYS[3], ARGV[2])
else
  redis.call('SREM', KEYS[3], ARGV[2])
end
return 0
"#;

/// Cheap to clone.
#[derive(Clone)]
pub struct UnreadCounters {
    redis: Redis,
    prefix: String,
    add: Script,
    read: Script,
    counts: Script,
    reset: Script,
}

/// A reader's unread counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub total: i64,
    /// Sender and count, most unread first.
    pub dialogs: Vec<(UserId, i64)>,
}

impl UnreadCounters {
    pub fn new(redis: Redis, key_prefix: &str) -> Self {
        Self {
            redis,
            prefix: format!("{key_prefix}dialogs:"),
            add: Script::new(ADD),
            read: Script::new(READ),
            counts: Script::new(COUNTS),
            reset: Script::new(RESET),
        }
    }

    fn zset_prefix(&self, reader: UserId) -> String {
        format!("{}unread:{reader}:", self.prefix)
    }

    fn keys(&self, reader: UserId, sender: UserId) -> [String; 3] {
        [
            format!("{}{sender}", self.zset_prefix(reader)),
            format!("{}readupto:{reader}", self.prefix),
            format!("{}unreadfrom:{reader}", self.prefix),
        ]
    }

    /// Applies increments; safe to repeat. The first goes alone (it loads the script if Redis
    /// lacks it), the rest in one pipeline.
    pub async fn add(&self, batch: &[Unread]) -> Result<(), CacheError> {
        let Some((first, rest)) = batch.split_first() else {
            return Ok(());
        };
        let mut connection = self.redis.connection().await?;
        let [zset, upto, senders] = self.keys(first.recipient, first.sender);
        let _: i64 = self
            .add
            .key(zset)
            .key(upto)
            .key(senders)
            .arg(first.message.0)
            .arg(first.sender.0)
            .arg(CAP)
            .invoke_async(&mut connection)
            .await?;
        if rest.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for unread in rest {
            let [zset, upto, senders] = self.keys(unread.recipient, unread.sender);
            pipe.cmd("EVALSHA")
                .arg(self.add.get_hash())
                .arg(3)
                .arg(zset)
                .arg(upto)
                .arg(senders)
                .arg(unread.message.0)
                .arg(unread.sender.0)
                .arg(CAP)
                .ignore();
        }
        let _: () = pipe.query_async(&mut connection).await?;
        Ok(())
    }

    /// `reader` has read the dialog with `sender` up to `upto`.
    pub async fn mark_read(
        &self,
        reader: UserId,
        sender: UserId,
        upto: i64,
    ) -> Result<(), CacheError> {
        let mut connection = self.redis.connection().await?;
        let [zset, upto_key, senders] = self.keys(reader, sender);
        let _: i64 = self
            .read
            .key(zset)
            .key(upto_key)
            .key(senders)
            .arg(upto)
            .arg(sender.0)
            .invoke_async(&mut connection)
            .await?;
        Ok(())
    }

    pub async fn counts(&self, reader: UserId) -> Result<Counts, CacheError> {
        let mut connection = self.redis.connection().await?;
        let pairs: Vec<(i64, i64)> = self
            .counts
            .key(format!("{}unreadfrom:{reader}", self.prefix))
            .arg(self.zset_prefix(reader))
            .invoke_async(&mut connection)
            .await?;
        let mut dialogs: Vec<(UserId, i64)> = pairs
            .into_iter()
            .map(|(sender, count)| (UserId(sender), count))
            .collect();
        dialogs.sort_by_key(|(sender, count)| (std::cmp::Reverse(*count), *sender));
        Ok(Counts {
            total: dialogs.iter().map(|(_, count)| count).sum(),
            dialogs,
        })
    }

    /// Sets dialog sides as the shards have them (the repair).
    pub async fn reset(&self, positions: &[ReadPosition]) -> Result<(), CacheError> {
        let mut connection = self.redis.connection().await?;
        for position in positions {
            let [zset, upto, senders] = self.keys(position.reader, position.other);
            let mut invocation = self.reset.key(zset);
            invocation
                .key(upto)
                .key(senders)
                .arg(position.read_upto)
                .arg(position.other.0);
            for id in &position.unread {
                invocation.arg(*id);
            }
            let _: i64 = invocation.invoke_async(&mut connection).await?;
        }
        Ok(())
    }
}
