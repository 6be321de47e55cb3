//! Tarantool: in-memory (memtx) spaces with tree indexes, every write logged to its WAL before it
//! is acknowledged (wal_mode = write), and the API's operations as Lua functions running next to
//! the data; a rating and its film's counters change in one transaction, so they stay exact.

use std::sync::Arc;

use anyhow::{Context, Result};
use rmpv::Value;

use super::data::{Bookmark, Film, Rating, Review, User, film_uuid_string};
use super::iproto::Pool;
use super::{BOOKMARK_PAGE, REVIEW_PAGE, Store};

const SCHEMA: &str = r#"
for _, name in ipairs({'ugc_ratings', 'ugc_film_ratings', 'ugc_reviews', 'ugc_bookmarks'}) do
    if box.space[name] then box.space[name]:drop() end
end
box.schema.space.create('ugc_ratings', {format = {
    {'user_id', 'unsigned'}, {'film_id', 'uuid'}, {'score', 'unsigned'}, {'rated_at', 'unsigned'}}})
box.space.ugc_ratings:create_index('primary', {parts = {'user_id', 'film_id'}})
box.schema.space.create('ugc_film_ratings', {format = {
    {'film_id', 'uuid'}, {'score_sum', 'integer'}, {'votes', 'integer'}}})
box.space.ugc_film_ratings:create_index('primary', {parts = {'film_id'}})
box.schema.space.create('ugc_reviews', {format = {
    {'film_id', 'uuid'}, {'user_id', 'unsigned'}, {'score', 'unsigned'}, {'written_at', 'unsigned'},
    {'likes', 'unsigned'}, {'dislikes', 'unsigned'}, {'votes', 'integer'}, {'body', 'string'}}})
box.space.ugc_reviews:create_index('primary', {parts = {'film_id', 'user_id'}})
box.schema.space.create('ugc_bookmarks', {format = {
    {'user_id', 'unsigned'}, {'film_id', 'uuid'}, {'added_at', 'unsigned'}}})
box.space.ugc_bookmarks:create_index('primary', {parts = {'user_id', 'film_id'}})
-- After the bulk load:
-- box.space.ugc_reviews:create_index('newest', {parts = {'film_id', 'written_at'}, unique = false})
-- box.space.ugc_reviews:create_index('top', {parts = {'film_id', 'votes', 'written_at'}, unique = false})
-- box.space.ugc_bookmarks:create_index('newest', {parts = {'user_id', 'added_at'}, unique = false})
"#;

const INDEXES: &str = r#"
box.space.ugc_reviews:create_index('newest', {parts = {'film_id', 'written_at'}, unique = false})
box.space.ugc_reviews:create_index('top', {parts = {'film_id', 'votes', 'written_at'}, unique = false})
box.space.ugc_bookmarks:create_index('newest', {parts = {'user_id', 'added_at'}, unique = false})
"#;

/// The study's stored procedures, defined on every connect (Lua globals do not survive a
/// restart; the spaces do).
const FUNCTIONS: &str = r#"
local uuid = require('uuid')
local function rate_one(user, film, score, at)
    local old = box.space.ugc_ratings:get{user, film}
    box.space.ugc_ratings:replace{user, film, score, at}
    local sum, votes = score, 1
    if old ~= nil then sum, votes = score - old[3], 0 end
    if box.space.ugc_film_ratings:get{film} == nil then
        box.space.ugc_film_ratings:insert{film, sum, votes}
    else
        box.space.ugc_film_ratings:update({film}, {{'+', 2, sum}, {'+', 3, votes}})
    end
end
function ugc_rate(user, film, score, at)
    box.begin()
    rate_one(user, uuid.fromstr(film), score, at)
    box.commit()
end
function ugc_rate_batch(rows)
    box.begin()
    for _, r in ipairs(rows) do rate_one(r[1], uuid.fromstr(r[2]), r[3], r[4]) end
    box.commit()
end
function ugc_user_rating(user, film)
    local t = box.space.ugc_ratings:get{user, uuid.fromstr(film)}
    if t == nil then return box.NULL end
    return t[3]
end
function ugc_film_rating(film)
    local t = box.space.ugc_film_ratings:get{uuid.fromstr(film)}
    if t == nil then return 0, 0 end
    return t[2], t[3]
end
function ugc_reviews(index, film, limit)
    return box.space.ugc_reviews.index[index]:select({uuid.fromstr(film)}, {iterator = 'REQ', limit = limit})
end
function ugc_bookmarks(user, limit)
    return box.space.ugc_bookmarks.index.newest:select({user}, {iterator = 'REQ', limit = limit})
end
function ugc_load(space, rows, film_field)
    box.begin()
    local s = box.space[space]
    for _, r in ipairs(rows) do
        r[film_field] = uuid.fromstr(r[film_field])
        s:insert(r)
    end
    box.commit()
end
function ugc_footprint()
    local bytes = 0
    for _, name in ipairs({'ugc_ratings', 'ugc_film_ratings', 'ugc_reviews', 'ugc_bookmarks'}) do
        local s = box.space[name]
        bytes = bytes + s:bsize()
        for _, index in pairs(s.index) do
            if type(_) == 'number' then bytes = bytes + index:bsize() end
        end
    end
    return bytes
end
"#;

#[derive(Clone)]
pub struct Tarantool {
    pool: Arc<Pool>,
}

impl Tarantool {
    pub async fn connect(address: &str, user: &str, password: &str, _size: usize) -> Result<Self> {
        let pool = Arc::new(Pool::new(address, user, password));
        pool.eval(FUNCTIONS, Vec::new())
            .await
            .context("defining the study's functions")?;
        Ok(Self { pool })
    }

    fn film(film: Film) -> Value {
        Value::from(film_uuid_string(film))
    }

    async fn count_of(&self, function: &str, args: Vec<Value>) -> Result<usize> {
        let result = self.pool.call(function, args).await?;
        // CALL wraps a returned table of tuples in one array.
        Ok(match result.first() {
            Some(Value::Array(rows)) => rows.len(),
            _ => 0,
        })
    }
}

fn rating_row(r: &Rating) -> Value {
    Value::Array(vec![
        Value::from(r.user),
        Tarantool::film(r.film),
        Value::from(r.score),
        Value::from(r.at_ms),
    ])
}

impl Store for Tarantool {
    fn name(&self) -> &'static str {
        "tarantool"
    }
    fn schema(&self) -> &'static str {
        SCHEMA
    }
    async fn version(&self) -> Result<String> {
        let result = self
            .pool
            .eval("return box.info.version", Vec::new())
            .await?;
        Ok(result
            .first()
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned())
    }
    async fn reset(&self) -> Result<()> {
        self.pool.eval(SCHEMA, Vec::new()).await?;
        Ok(())
    }
    async fn load_ratings(&self, rows: Vec<Rating>) -> Result<()> {
        let rows = Value::Array(rows.iter().map(rating_row).collect());
        self.pool
            .call(
                "ugc_load",
                vec![Value::from("ugc_ratings"), rows, Value::from(2)],
            )
            .await?;
        Ok(())
    }
    async fn load_totals(&self, totals: Vec<(Film, u64, u64)>) -> Result<()> {
        let rows = totals
            .iter()
            .filter(|(_, _, count)| *count > 0)
            .map(|(film, sum, count)| {
                Value::Array(vec![
                    Self::film(*film),
                    Value::from(*sum),
                    Value::from(*count),
                ])
            })
            .collect();
        self.pool
            .call(
                "ugc_load",
                vec![
                    Value::from("ugc_film_ratings"),
                    Value::Array(rows),
                    Value::from(1),
                ],
            )
            .await?;
        Ok(())
    }
    async fn load_reviews(&self, rows: Vec<Review>) -> Result<()> {
        let rows = rows
            .iter()
            .map(|r| {
                Value::Array(vec![
                    Self::film(r.film),
                    Value::from(r.user),
                    Value::from(r.score),
                    Value::from(r.at_ms),
                    Value::from(r.likes),
                    Value::from(r.dislikes),
                    Value::from(i64::from(r.likes) - i64::from(r.dislikes)),
                    Value::from(r.text.as_str()),
                ])
            })
            .collect();
        self.pool
            .call(
                "ugc_load",
                vec![
                    Value::from("ugc_reviews"),
                    Value::Array(rows),
                    Value::from(1),
                ],
            )
            .await?;
        Ok(())
    }
    async fn load_bookmarks(&self, rows: Vec<Bookmark>) -> Result<()> {
        let rows = rows
            .iter()
            .map(|b| {
                Value::Array(vec![
                    Value::from(b.user),
                    Self::film(b.film),
                    Value::from(b.at_ms),
                ])
            })
            .collect();
        self.pool
            .call(
                "ugc_load",
                vec![
                    Value::from("ugc_bookmarks"),
                    Value::Array(rows),
                    Value::from(2),
                ],
            )
            .await?;
        Ok(())
    }
    async fn finish_load(&self) -> Result<()> {
        self.pool.eval(INDEXES, Vec::new()).await?;
        Ok(())
    }
    async fn footprint(&self) -> Result<(u64, String)> {
        let result = self.pool.call("ugc_footprint", Vec::new()).await?;
        Ok((
            result.first().and_then(Value::as_u64).unwrap_or(0),
            "space:bsize() + index:bsize() of the four spaces (in RAM; WAL and snapshots on disk besides)".into(),
        ))
    }
    async fn rate(&self, r: Rating) -> Result<()> {
        self.pool
            .call(
                "ugc_rate",
                vec![
                    Value::from(r.user),
                    Self::film(r.film),
                    Value::from(r.score),
                    Value::from(r.at_ms),
                ],
            )
            .await?;
        Ok(())
    }
    async fn rate_batch(&self, ratings: Vec<Rating>) -> Result<()> {
        let rows = Value::Array(ratings.iter().map(rating_row).collect());
        self.pool.call("ugc_rate_batch", vec![rows]).await?;
        Ok(())
    }
    async fn user_rating(&self, user: User, film: Film) -> Result<Option<u8>> {
        let result = self
            .pool
            .call("ugc_user_rating", vec![Value::from(user), Self::film(film)])
            .await?;
        Ok(result
            .first()
            .and_then(Value::as_u64)
            .map(|score| score as u8))
    }
    async fn film_rating(&self, film: Film) -> Result<(u64, u64)> {
        let result = self
            .pool
            .call("ugc_film_rating", vec![Self::film(film)])
            .await?;
        let number = |i: usize| result.get(i).and_then(Value::as_u64).unwrap_or(0);
        Ok((number(0), number(1)))
    }
    async fn reviews_newest(&self, film: Film) -> Result<usize> {
        self.count_of(
            "ugc_reviews",
            vec![
                Value::from("newest"),
                Self::film(film),
                Value::from(REVIEW_PAGE),
            ],
        )
        .await
    }
    async fn reviews_top(&self, film: Film) -> Result<usize> {
        self.count_of(
            "ugc_reviews",
            vec![
                Value::from("top"),
                Self::film(film),
                Value::from(REVIEW_PAGE),
            ],
        )
        .await
    }
    async fn bookmarks(&self, user: User) -> Result<usize> {
        self.count_of(
            "ugc_bookmarks",
            vec![Value::from(user), Value::from(BOOKMARK_PAGE)],
        )
        .await
    }
}
