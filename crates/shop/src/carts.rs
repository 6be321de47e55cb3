//! Carts in Redis: one hash per user (product id → quantity), changed by a script that also
//! keeps idempotent replies, so a change and its stored reply happen together.

use agora_platform::cache::{CacheError, Redis};

use crate::store::CartLine;

/// How long an untouched cart, and an idempotent reply, are kept.
const CART_TTL_SECS: u64 = 30 * 24 * 3600;
const REPLY_TTL_SECS: u64 = 24 * 3600;

/// KEYS: the cart, the idempotency key ('' without one). ARGV: product, quantity (0 removes
/// the line, -1 empties the cart), request hash, reply TTL, cart TTL.
/// Replies {outcome, body}: 'replay' with the stored body, 'mismatch', or 'done' with the cart.
const CHANGE: &str = r#"
if KEYS[2] ~= '' then
  local stored = redis.call('GET', KEYS[2])
  if stored then
    local sep = string.find(stored, '\n', 1, true)
    if string.sub(stored, 1, sep - 1) ~= ARGV[3] then return {'mismatch', ''} end
    return {'replay', string.sub(stored, sep + 1)}
  end
end
if ARGV[2] == '-1' then
  redis.call('DEL', KEYS[1])
elseif ARGV[2] == '0' then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  redis.call('EXPIRE', KEYS[1], ARGV[5])
end
local flat = redis.call('HGETALL', KEYS[1])
local ids, quantities = {}, {}
for i = 1, #flat, 2 do
  ids[#ids + 1] = flat[i]
  quantities[flat[i]] = flat[i + 1]
end
-- Ids are decimal strings without leading zeros: shorter is smaller.
table.sort(ids, function(a, b) return #a < #b or (#a == #b and a < b) end)
local items = {}
for _, id in ipairs(ids) do
  items[#items + 1] = '{"product_id":"' .. id .. '","quantity":' .. quantities[id] .. '}'
end
local body = '{"items":[' .. table.concat(items, ',') .. ']}'
if KEYS[2] ~= '' then
  redis.call('SET', KEYS[2], ARGV[3] .. '\n' .. body, 'EX', ARGV[4])
end
return {'done', body}
"#;

/// What a cart change came to.
pub enum Change {
    Done(String),
    Replayed(String),
    KeyReused,
}

#[derive(Clone)]
pub struct RedisCarts {
    redis: Redis,
    prefix: String,
    script: std::sync::Arc<redis::Script>,
}

impl RedisCarts {
    pub fn new(redis: Redis, key_prefix: &str) -> Self {
        Self {
            redis,
            prefix: format!("{key_prefix}shop:"),
            script: std::sync::Arc::new(redis::Script::new(CHANGE)),
        }
    }

    fn cart_key(&self, user: i64) -> String {
        format!("{}cart:{user}", self.prefix)
    }

    /// The cart, from a replica when there is one: a shopaholic's change reaches it within
    /// a replication round trip, and the order reads the master's (`lines_for_order`).
    pub async fn lines(&self, user: i64) -> Result<Vec<CartLine>, CacheError> {
        let mut connection = self.redis.read_connection().await?;
        self.read_lines(&mut connection, user).await
    }

    /// The cart as the master has it: what an order takes.
    pub async fn lines_for_order(&self, user: i64) -> Result<Vec<CartLine>, CacheError> {
        let mut connection = self.redis.connection().await?;
        self.read_lines(&mut connection, user).await
    }

    async fn read_lines(
        &self,
        connection: &mut agora_platform::cache::Connection,
        user: i64,
    ) -> Result<Vec<CartLine>, CacheError> {
        let flat: Vec<(i64, i32)> = redis::cmd("HGETALL")
            .arg(self.cart_key(user))
            .query_async(connection)
            .await?;
        let mut lines: Vec<CartLine> = flat
            .into_iter()
            .map(|(product_id, quantity)| CartLine {
                product_id,
                quantity,
            })
            .collect();
        lines.sort_by_key(|line| line.product_id);
        Ok(lines)
    }

    /// Sets a line (0 removes it; `product: None` empties the cart).
    pub async fn change(
        &self,
        user: i64,
        product: Option<i64>,
        quantity: i32,
        idempotency: Option<(&str, &[u8])>,
    ) -> Result<Change, CacheError> {
        let mut connection = self.redis.connection().await?;
        let (key, hash) = match idempotency {
            Some((key, hash)) => (format!("{}idem:{user}:{key}", self.prefix), hex(hash)),
            None => (String::new(), String::new()),
        };
        let quantity = if product.is_none() { -1 } else { quantity };
        let (outcome, body): (String, String) = self
            .script
            .key(self.cart_key(user))
            .key(key)
            .arg(product.unwrap_or(0))
            .arg(quantity)
            .arg(hash)
            .arg(REPLY_TTL_SECS)
            .arg(CART_TTL_SECS)
            .invoke_async(&mut connection)
            .await?;
        Ok(match outcome.as_str() {
            "replay" => Change::Replayed(body),
            "mismatch" => Change::KeyReused,
            _ => Change::Done(body),
        })
    }

    /// Removes the lines an order took (lines added meanwhile stay).
    pub async fn remove(&self, user: i64, lines: &[CartLine]) -> Result<(), CacheError> {
        if lines.is_empty() {
            return Ok(());
        }
        let mut connection = self.redis.connection().await?;
        let mut command = redis::cmd("HDEL");
        command.arg(self.cart_key(user));
        for line in lines {
            command.arg(line.product_id);
        }
        command.query_async::<i64>(&mut connection).await?;
        Ok(())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
