//! ClickHouse over its HTTP interface: append-only MergeTree tables. A change is a new row
//! with a later version that ReplacingMergeTree collapses in background merges, so an exact
//! answer must collapse at read time (FINAL); there are no transactions, so a film's counters
//! cannot be kept beside the ratings and are computed on read.

use std::fmt::Write as _;

use anyhow::{Context, Result, bail};

use super::data::{Bookmark, Film, Rating, Review, User, film_uuid_string};
use super::{BOOKMARK_PAGE, REVIEW_PAGE, Store};

const DATABASE: &str = "ugc_study";

const SCHEMA: &str = r#"
DROP DATABASE IF EXISTS ugc_study;
CREATE DATABASE ugc_study;
CREATE TABLE ugc_study.ratings (
    film_id  UUID,
    user_id  Int64,
    score    UInt8,
    rated_at UInt64   -- ms; the version: the latest row of a (film, user) wins
) ENGINE = ReplacingMergeTree(rated_at) ORDER BY (film_id, user_id);
CREATE TABLE ugc_study.reviews (
    film_id    UUID,
    user_id    Int64,
    score      UInt8,
    written_at UInt64,
    likes      UInt32,
    dislikes   UInt32,
    body       String,
    version    UInt64
) ENGINE = ReplacingMergeTree(version) ORDER BY (film_id, user_id);
CREATE TABLE ugc_study.bookmarks (
    user_id  Int64,
    film_id  UUID,
    added_at UInt64,
    deleted  UInt8
) ENGINE = ReplacingMergeTree(added_at) ORDER BY (user_id, film_id);
"#;

#[derive(Clone)]
pub struct ClickHouse {
    http: reqwest::Client,
    url: String,
    user: String,
    password: String,
}

impl ClickHouse {
    pub fn new(url: &str) -> Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .timeout(std::time::Duration::from_secs(600))
                .build()?,
            url: url.trim_end_matches('/').to_owned(),
            user: std::env::var("AGORA_UGC_CLICKHOUSE_USER").unwrap_or_else(|_| "default".into()),
            password: std::env::var("AGORA_UGC_CLICKHOUSE_PASSWORD").unwrap_or_default(),
        })
    }

    /// A statement in the URL and data in the body (inserts), or the statement as the body.
    async fn send(&self, query: Option<&str>, body: String) -> Result<String> {
        let mut request = self
            .http
            .post(format!("{}/", self.url))
            .header("X-ClickHouse-User", &self.user)
            .header("X-ClickHouse-Key", &self.password)
            .query(&[("database", DATABASE)]);
        if let Some(query) = query {
            request = request.query(&[("query", query)]);
        }
        let response = request.body(body).send().await?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!(
                "ClickHouse {status}: {}",
                text.lines().next().unwrap_or_default()
            );
        }
        Ok(text)
    }

    async fn query(&self, sql: String) -> Result<String> {
        self.send(None, sql).await
    }

    async fn insert(&self, table: &str, rows: String) -> Result<()> {
        self.send(
            Some(&format!("INSERT INTO {table} FORMAT TabSeparated")),
            rows,
        )
        .await
        .map(drop)
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('\t', "\\t")
        .replace('\n', "\\n")
}

fn rating_rows(rows: &[Rating]) -> String {
    let mut text = String::with_capacity(rows.len() * 70);
    for r in rows {
        let _ = writeln!(
            text,
            "{}\t{}\t{}\t{}",
            film_uuid_string(r.film),
            r.user,
            r.score,
            r.at_ms
        );
    }
    text
}

impl Store for ClickHouse {
    fn name(&self) -> &'static str {
        "clickhouse"
    }
    fn schema(&self) -> &'static str {
        SCHEMA
    }
    async fn version(&self) -> Result<String> {
        Ok(self
            .http
            .post(format!("{}/", self.url))
            .header("X-ClickHouse-User", &self.user)
            .header("X-ClickHouse-Key", &self.password)
            .body("SELECT version()")
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?
            .trim()
            .to_owned())
    }
    async fn reset(&self) -> Result<()> {
        // One statement per request; comments go first (they may hold a semicolon).
        let uncommented: Vec<&str> = SCHEMA
            .lines()
            .map(|line| line.split("--").next().unwrap_or_default())
            .collect();
        let statements: Vec<String> = uncommented
            .join("\n")
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        for statement in statements {
            let response = self
                .http
                .post(format!("{}/", self.url))
                .header("X-ClickHouse-User", &self.user)
                .header("X-ClickHouse-Key", &self.password)
                .body(statement.clone())
                .send()
                .await?;
            let status = response.status();
            let text = response.text().await?;
            if !status.is_success() {
                bail!(
                    "ClickHouse {status} for {statement}: {}",
                    text.lines().next().unwrap_or_default()
                );
            }
        }
        Ok(())
    }
    async fn load_ratings(&self, rows: Vec<Rating>) -> Result<()> {
        self.insert("ratings", rating_rows(&rows)).await
    }
    async fn load_totals(&self, _totals: Vec<(Film, u64, u64)>) -> Result<()> {
        Ok(()) // computed on read
    }
    async fn load_reviews(&self, rows: Vec<Review>) -> Result<()> {
        let mut text = String::with_capacity(rows.len() * 400);
        for r in &rows {
            let _ = writeln!(
                text,
                "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                film_uuid_string(r.film),
                r.user,
                r.score,
                r.at_ms,
                r.likes,
                r.dislikes,
                escape(&r.text),
                r.at_ms
            );
        }
        self.insert("reviews", text).await
    }
    async fn load_bookmarks(&self, rows: Vec<Bookmark>) -> Result<()> {
        let mut text = String::with_capacity(rows.len() * 70);
        for b in &rows {
            let _ = writeln!(
                text,
                "{}\t{}\t{}\t0",
                b.user,
                film_uuid_string(b.film),
                b.at_ms
            );
        }
        self.insert("bookmarks", text).await
    }
    async fn finish_load(&self) -> Result<()> {
        // Merge the load's parts, as background merges would in time.
        for table in ["ratings", "reviews", "bookmarks"] {
            self.query(format!("OPTIMIZE TABLE {table} FINAL")).await?;
        }
        Ok(())
    }
    async fn footprint(&self) -> Result<(u64, String)> {
        let text = self
            .query(
                "SELECT sum(bytes) FROM system.parts WHERE active AND database = 'ugc_study'"
                    .into(),
            )
            .await?;
        Ok((
            text.trim().parse().context("system.parts bytes")?,
            "system.parts bytes of active parts (compressed, on disk)".into(),
        ))
    }
    async fn rate(&self, r: Rating) -> Result<()> {
        self.insert("ratings", rating_rows(&[r])).await
    }
    async fn rate_batch(&self, ratings: Vec<Rating>) -> Result<()> {
        self.insert("ratings", rating_rows(&ratings)).await
    }
    async fn user_rating(&self, user: User, film: Film) -> Result<Option<u8>> {
        let text = self
            .query(format!(
                "SELECT argMax(score, rated_at), count() FROM ratings \
                 WHERE film_id = toUUID('{}') AND user_id = {user} FORMAT TabSeparated",
                film_uuid_string(film)
            ))
            .await?;
        let mut fields = text.trim().split('\t');
        let score: u8 = fields.next().unwrap_or("0").parse()?;
        let count: u64 = fields.next().unwrap_or("0").parse()?;
        Ok((count > 0).then_some(score))
    }
    async fn film_rating(&self, film: Film) -> Result<(u64, u64)> {
        let text = self
            .query(format!(
                "SELECT sum(score), count() FROM ratings FINAL WHERE film_id = toUUID('{}') FORMAT TabSeparated",
                film_uuid_string(film)
            ))
            .await?;
        let mut fields = text.trim().split('\t');
        Ok((
            fields.next().unwrap_or("0").parse()?,
            fields.next().unwrap_or("0").parse()?,
        ))
    }
    async fn reviews_newest(&self, film: Film) -> Result<usize> {
        let text = self
            .query(format!(
                "SELECT user_id, score, written_at, likes, dislikes, body FROM reviews FINAL \
                 WHERE film_id = toUUID('{}') ORDER BY written_at DESC LIMIT {REVIEW_PAGE} FORMAT TabSeparated",
                film_uuid_string(film)
            ))
            .await?;
        Ok(text.lines().count())
    }
    async fn reviews_top(&self, film: Film) -> Result<usize> {
        let text = self
            .query(format!(
                "SELECT user_id, score, written_at, likes, dislikes, body FROM reviews FINAL \
                 WHERE film_id = toUUID('{}') ORDER BY likes - dislikes DESC, written_at DESC \
                 LIMIT {REVIEW_PAGE} FORMAT TabSeparated",
                film_uuid_string(film)
            ))
            .await?;
        Ok(text.lines().count())
    }
    async fn bookmarks(&self, user: User) -> Result<usize> {
        let text = self
            .query(format!(
                "SELECT film_id, added_at FROM bookmarks FINAL WHERE user_id = {user} AND deleted = 0 \
                 ORDER BY added_at DESC LIMIT {BOOKMARK_PAGE} FORMAT TabSeparated"
            ))
            .await?;
        Ok(text.lines().count())
    }
}
