//! Redis: everything in memory, shaped by hand for each query: a hash of a user's ratings, a
//! hash of a film's sum and count, a hash per review with two sorted sets per film (by time and
//! by votes), a sorted set of a user's bookmarks. A rating and its counters change in one Lua
//! script, which Redis runs atomically, so the counters are exact. The study runs its own
//! instance (the bench script starts it), so that `reset` may flush it.

use anyhow::Result;
use redis::aio::MultiplexedConnection;

use super::data::{Bookmark, Film, Rating, Review, User, film_uuid};
use super::{BOOKMARK_PAGE, REVIEW_PAGE, Store};

const SCHEMA: &str = r#"
ugc:r:{user}          hash    film id (16 bytes) -> score           a user's ratings
ugc:f:{film}          hash    s -> sum of scores, c -> count        a film's counters
ugc:rv:{film}:{user}  hash    score, at, likes, dislikes, body      a review
ugc:rvn:{film}        zset    user, scored by the review's time     newest first
ugc:rvt:{film}        zset    user, scored by votes · 2^29 + seconds since 2020
ugc:b:{user}          zset    film id, scored by the time added     a user's bookmarks

rate (one Lua script, atomic): old = HGET ugc:r:{user} film; HSET it; HINCRBY ugc:f:{film} s by the
difference, and c by 1 if there was no old score. A batch is the same script over many pairs.
A page of reviews: one Lua script (ZREVRANGE, then HGETALL of each review), one round trip.
"#;

const RATE: &str = r"
for i = 1, #KEYS, 2 do
  local film, score = ARGV[i], tonumber(ARGV[i + 1])
  local old = redis.call('HGET', KEYS[i], film)
  redis.call('HSET', KEYS[i], film, score)
  if old then
    redis.call('HINCRBY', KEYS[i + 1], 's', score - tonumber(old))
  else
    redis.call('HINCRBY', KEYS[i + 1], 's', score)
    redis.call('HINCRBY', KEYS[i + 1], 'c', 1)
  end
end
return 1
";

const REVIEW_PAGE_SCRIPT: &str = r"
local users = redis.call('ZREVRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1)
local page = {}
for _, user in ipairs(users) do
  page[#page + 1] = redis.call('HGETALL', ARGV[1] .. user)
end
return page
";

/// 2020-01-01 in seconds: review times fit 29 bits beside the votes.
const EPOCH_2020: i64 = 1_577_836_800;

#[derive(Clone)]
pub struct RedisStore {
    connection: MultiplexedConnection,
    rate: redis::Script,
    review_page: redis::Script,
}

fn key(parts: &[&[u8]]) -> Vec<u8> {
    let mut key = b"ugc:".to_vec();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            key.push(b':');
        }
        key.extend_from_slice(part);
    }
    key
}

fn user_key(kind: &str, user: User) -> Vec<u8> {
    key(&[kind.as_bytes(), user.to_string().as_bytes()])
}

fn film_key(kind: &str, film: Film) -> Vec<u8> {
    key(&[kind.as_bytes(), &film_uuid(film)])
}

fn top_score(likes: u32, dislikes: u32, at_ms: i64) -> f64 {
    (i64::from(likes) - i64::from(dislikes)) as f64 * (1u64 << 29) as f64
        + (at_ms / 1000 - EPOCH_2020) as f64
}

impl RedisStore {
    pub async fn connect(url: &str) -> Result<Self> {
        let client = redis::Client::open(url)?;
        Ok(Self {
            connection: client.get_multiplexed_async_connection().await?,
            rate: redis::Script::new(RATE),
            review_page: redis::Script::new(REVIEW_PAGE_SCRIPT),
        })
    }

    async fn rate_all(&self, ratings: &[Rating]) -> Result<()> {
        let mut invocation = self.rate.prepare_invoke();
        for r in ratings {
            invocation
                .key(user_key("r", r.user))
                .key(film_key("f", r.film))
                .arg(&film_uuid(r.film)[..])
                .arg(r.score);
        }
        invocation
            .invoke_async::<i64>(&mut self.connection.clone())
            .await?;
        Ok(())
    }

    async fn review_page(&self, film: Film, index: &str) -> Result<usize> {
        let mut prefix = key(&[b"rv", &film_uuid(film)]);
        prefix.push(b':');
        let page: Vec<Vec<Vec<u8>>> = self
            .review_page
            .key(film_key(index, film))
            .arg(prefix)
            .arg(REVIEW_PAGE)
            .invoke_async(&mut self.connection.clone())
            .await?;
        Ok(page.len())
    }
}

impl Store for RedisStore {
    fn name(&self) -> &'static str {
        "redis"
    }
    fn schema(&self) -> &'static str {
        SCHEMA
    }
    async fn version(&self) -> Result<String> {
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut self.connection.clone())
            .await?;
        Ok(info
            .lines()
            .find_map(|line| line.strip_prefix("redis_version:"))
            .unwrap_or("?")
            .trim()
            .to_owned())
    }
    async fn reset(&self) -> Result<()> {
        redis::cmd("FLUSHDB")
            .query_async::<()>(&mut self.connection.clone())
            .await?;
        Ok(())
    }
    async fn load_ratings(&self, rows: Vec<Rating>) -> Result<()> {
        let mut pipe = redis::pipe();
        for r in &rows {
            pipe.cmd("HSET")
                .arg(user_key("r", r.user))
                .arg(&film_uuid(r.film)[..])
                .arg(r.score)
                .ignore();
        }
        pipe.query_async::<()>(&mut self.connection.clone()).await?;
        Ok(())
    }
    async fn load_totals(&self, totals: Vec<(Film, u64, u64)>) -> Result<()> {
        let mut pipe = redis::pipe();
        for (film, sum, count) in totals.iter().filter(|(_, _, count)| *count > 0) {
            pipe.cmd("HSET")
                .arg(film_key("f", *film))
                .arg("s")
                .arg(sum)
                .arg("c")
                .arg(count)
                .ignore();
        }
        pipe.query_async::<()>(&mut self.connection.clone()).await?;
        Ok(())
    }
    async fn load_reviews(&self, rows: Vec<Review>) -> Result<()> {
        let mut pipe = redis::pipe();
        for r in &rows {
            let film = film_uuid(r.film);
            let user = r.user.to_string();
            pipe.cmd("HSET")
                .arg(key(&[b"rv", &film, user.as_bytes()]))
                .arg("score")
                .arg(r.score)
                .arg("at")
                .arg(r.at_ms)
                .arg("likes")
                .arg(r.likes)
                .arg("dislikes")
                .arg(r.dislikes)
                .arg("body")
                .arg(&r.text)
                .ignore();
            pipe.cmd("ZADD")
                .arg(film_key("rvn", r.film))
                .arg(r.at_ms)
                .arg(&user)
                .ignore();
            pipe.cmd("ZADD")
                .arg(film_key("rvt", r.film))
                .arg(top_score(r.likes, r.dislikes, r.at_ms))
                .arg(&user)
                .ignore();
        }
        pipe.query_async::<()>(&mut self.connection.clone()).await?;
        Ok(())
    }
    async fn load_bookmarks(&self, rows: Vec<Bookmark>) -> Result<()> {
        let mut pipe = redis::pipe();
        for b in &rows {
            pipe.cmd("ZADD")
                .arg(user_key("b", b.user))
                .arg(b.at_ms)
                .arg(&film_uuid(b.film)[..])
                .ignore();
        }
        pipe.query_async::<()>(&mut self.connection.clone()).await?;
        Ok(())
    }
    async fn finish_load(&self) -> Result<()> {
        Ok(())
    }
    async fn footprint(&self) -> Result<(u64, String)> {
        let info: String = redis::cmd("INFO")
            .arg("memory")
            .query_async(&mut self.connection.clone())
            .await?;
        let used = info
            .lines()
            .find_map(|line| line.strip_prefix("used_memory:"))
            .unwrap_or("0")
            .trim()
            .parse()?;
        Ok((
            used,
            "INFO used_memory (in RAM; the append-only file on disk besides)".into(),
        ))
    }
    async fn rate(&self, rating: Rating) -> Result<()> {
        self.rate_all(&[rating]).await
    }
    async fn rate_batch(&self, ratings: Vec<Rating>) -> Result<()> {
        self.rate_all(&ratings).await
    }
    async fn user_rating(&self, user: User, film: Film) -> Result<Option<u8>> {
        Ok(redis::cmd("HGET")
            .arg(user_key("r", user))
            .arg(&film_uuid(film)[..])
            .query_async::<Option<u8>>(&mut self.connection.clone())
            .await?)
    }
    async fn film_rating(&self, film: Film) -> Result<(u64, u64)> {
        let (sum, count): (Option<u64>, Option<u64>) = redis::cmd("HMGET")
            .arg(film_key("f", film))
            .arg("s")
            .arg("c")
            .query_async(&mut self.connection.clone())
            .await?;
        Ok((sum.unwrap_or(0), count.unwrap_or(0)))
    }
    async fn reviews_newest(&self, film: Film) -> Result<usize> {
        self.review_page(film, "rvn").await
    }
    async fn reviews_top(&self, film: Film) -> Result<usize> {
        self.review_page(film, "rvt").await
    }
    async fn bookmarks(&self, user: User) -> Result<usize> {
        let page: Vec<(Vec<u8>, f64)> = redis::cmd("ZREVRANGE")
            .arg(user_key("b", user))
            .arg(0)
            .arg(BOOKMARK_PAGE - 1)
            .arg("WITHSCORES")
            .query_async(&mut self.connection.clone())
            .await?;
        Ok(page.len())
    }
}
