//! PostgreSQL: rows in tables with B-tree indexes, a film's sum and count kept in a counter row
//! updated in the rating's own transaction (exact under concurrent votes), writes through
//! PL/pgSQL functions so a rating is one round trip, like the other stores' server-side scripts.

use std::fmt::Write as _;

use anyhow::{Context, Result};
use bytes::Bytes;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use futures_util::SinkExt;

use super::data::{Bookmark, Film, Rating, Review, User, film_uuid_string};
use super::{BOOKMARK_PAGE, REVIEW_PAGE, Store};

const SCHEMA: &str = r#"
DROP TABLE IF EXISTS ratings, film_ratings, reviews, bookmarks;
CREATE TABLE ratings (
    user_id  bigint      NOT NULL,
    film_id  uuid        NOT NULL,
    score    smallint    NOT NULL CHECK (score BETWEEN 0 AND 10),
    rated_at timestamptz NOT NULL,
    PRIMARY KEY (user_id, film_id)
);
CREATE TABLE film_ratings (
    film_id   uuid   PRIMARY KEY,
    score_sum bigint NOT NULL,
    votes     bigint NOT NULL
);
CREATE TABLE reviews (
    film_id    uuid        NOT NULL,
    user_id    bigint      NOT NULL,
    score      smallint    NOT NULL,
    written_at timestamptz NOT NULL,
    likes      integer     NOT NULL DEFAULT 0,
    dislikes   integer     NOT NULL DEFAULT 0,
    body       text        NOT NULL,
    PRIMARY KEY (film_id, user_id)
);
CREATE TABLE bookmarks (
    user_id  bigint      NOT NULL,
    film_id  uuid        NOT NULL,
    added_at timestamptz NOT NULL,
    PRIMARY KEY (user_id, film_id)
);
-- After the bulk load:
-- CREATE INDEX reviews_newest ON reviews (film_id, written_at DESC);
-- CREATE INDEX reviews_top ON reviews (film_id, (likes - dislikes) DESC, written_at DESC);
-- CREATE INDEX bookmarks_newest ON bookmarks (user_id, added_at DESC);

-- A rating: insert, or change and learn the old score under the row's lock; then the film's
-- counters. A racing first rating of the same pair waits on the unique index and takes the
-- update path, so the counters stay exact.
CREATE OR REPLACE FUNCTION ugc_rate_one(p_user bigint, p_film uuid, p_score smallint, p_at timestamptz,
                                        OUT sum_delta bigint, OUT votes_delta bigint)
LANGUAGE plpgsql AS $$
DECLARE old smallint;
BEGIN
    INSERT INTO ratings VALUES (p_user, p_film, p_score, p_at) ON CONFLICT DO NOTHING;
    IF FOUND THEN
        sum_delta := p_score; votes_delta := 1;
    ELSE
        SELECT score INTO old FROM ratings WHERE user_id = p_user AND film_id = p_film FOR UPDATE;
        UPDATE ratings SET score = p_score, rated_at = p_at WHERE user_id = p_user AND film_id = p_film;
        sum_delta := p_score - old; votes_delta := 0;
    END IF;
END $$;

CREATE OR REPLACE FUNCTION ugc_rate(p_user bigint, p_film uuid, p_score smallint, p_at timestamptz)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE d record;
BEGIN
    SELECT * INTO d FROM ugc_rate_one(p_user, p_film, p_score, p_at);
    INSERT INTO film_ratings VALUES (p_film, d.sum_delta, d.votes_delta)
    ON CONFLICT (film_id) DO UPDATE SET score_sum = film_ratings.score_sum + EXCLUDED.score_sum,
                                        votes = film_ratings.votes + EXCLUDED.votes;
END $$;

-- A batch, sorted by the caller by (film, user): rating rows first, then the counters of each
-- film once, in film order, so concurrent batches and single ratings cannot deadlock.
CREATE OR REPLACE FUNCTION ugc_rate_batch(p_users bigint[], p_films uuid[], p_scores smallint[], p_ats timestamptz[])
RETURNS void LANGUAGE plpgsql AS $$
DECLARE d record; i int;
BEGIN
    CREATE TEMP TABLE IF NOT EXISTS ugc_deltas (film_id uuid, sum_delta bigint, votes_delta bigint) ON COMMIT DELETE ROWS;
    FOR i IN 1 .. coalesce(array_length(p_users, 1), 0) LOOP
        SELECT * INTO d FROM ugc_rate_one(p_users[i], p_films[i], p_scores[i], p_ats[i]);
        INSERT INTO ugc_deltas VALUES (p_films[i], d.sum_delta, d.votes_delta);
    END LOOP;
    INSERT INTO film_ratings
    SELECT film_id, sum(sum_delta), sum(votes_delta) FROM ugc_deltas GROUP BY film_id ORDER BY film_id
    ON CONFLICT (film_id) DO UPDATE SET score_sum = film_ratings.score_sum + EXCLUDED.score_sum,
                                        votes = film_ratings.votes + EXCLUDED.votes;
END $$;
"#;

const INDEXES: &str = r#"
CREATE INDEX reviews_newest ON reviews (film_id, written_at DESC);
CREATE INDEX reviews_top ON reviews (film_id, (likes - dislikes) DESC, written_at DESC);
CREATE INDEX bookmarks_newest ON bookmarks (user_id, added_at DESC);
"#;

#[derive(Clone)]
pub struct Postgres {
    pool: Pool,
}

impl Postgres {
    pub async fn connect(url: &str, size: usize) -> Result<Self> {
        let config: tokio_postgres::Config = url.parse().context("the PostgreSQL URL")?;
        let manager = Manager::from_config(
            config,
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager).max_size(size).build()?;
        Ok(Self { pool })
    }

    async fn copy(&self, statement: &str, rows: String) -> Result<()> {
        let client = self.pool.get().await?;
        let sink = client.copy_in::<_, Bytes>(statement).await?;
        futures_util::pin_mut!(sink);
        sink.send(Bytes::from(rows)).await?;
        sink.finish().await?;
        Ok(())
    }
}

fn timestamp(ms: i64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// COPY's text format: tabs and backslashes in values escaped.
fn copy_text(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('\t', "\\t")
        .replace('\n', "\\n")
}

impl Store for Postgres {
    fn name(&self) -> &'static str {
        "postgres"
    }
    fn schema(&self) -> &'static str {
        SCHEMA
    }
    async fn version(&self) -> Result<String> {
        let client = self.pool.get().await?;
        Ok(client.query_one("SHOW server_version", &[]).await?.get(0))
    }
    async fn reset(&self) -> Result<()> {
        self.pool.get().await?.batch_execute(SCHEMA).await?;
        Ok(())
    }
    async fn load_ratings(&self, rows: Vec<Rating>) -> Result<()> {
        let mut text = String::with_capacity(rows.len() * 80);
        for r in &rows {
            let _ = writeln!(
                text,
                "{}\t{}\t{}\t{}",
                r.user,
                film_uuid_string(r.film),
                r.score,
                timestamp(r.at_ms)
            );
        }
        self.copy("COPY ratings FROM STDIN", text).await
    }
    async fn load_totals(&self, totals: Vec<(Film, u64, u64)>) -> Result<()> {
        let mut text = String::with_capacity(totals.len() * 60);
        for (film, sum, count) in &totals {
            if *count > 0 {
                let _ = writeln!(text, "{}\t{sum}\t{count}", film_uuid_string(*film));
            }
        }
        self.copy("COPY film_ratings FROM STDIN", text).await
    }
    async fn load_reviews(&self, rows: Vec<Review>) -> Result<()> {
        let mut text = String::with_capacity(rows.len() * 400);
        for r in &rows {
            let _ = writeln!(
                text,
                "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                film_uuid_string(r.film),
                r.user,
                r.score,
                timestamp(r.at_ms),
                r.likes,
                r.dislikes,
                copy_text(&r.text)
            );
        }
        self.copy("COPY reviews FROM STDIN", text).await
    }
    async fn load_bookmarks(&self, rows: Vec<Bookmark>) -> Result<()> {
        let mut text = String::with_capacity(rows.len() * 80);
        for b in &rows {
            let _ = writeln!(
                text,
                "{}\t{}\t{}",
                b.user,
                film_uuid_string(b.film),
                timestamp(b.at_ms)
            );
        }
        self.copy("COPY bookmarks FROM STDIN", text).await
    }
    async fn finish_load(&self) -> Result<()> {
        let client = self.pool.get().await?;
        client.batch_execute(INDEXES).await?;
        // Alone: several statements in one batch form a transaction, which VACUUM refuses.
        client
            .batch_execute("VACUUM ANALYZE ratings, film_ratings, reviews, bookmarks")
            .await?;
        Ok(())
    }
    async fn footprint(&self) -> Result<(u64, String)> {
        let client = self.pool.get().await?;
        let bytes: i64 = client
            .query_one(
                "SELECT sum(pg_total_relation_size(c))::bigint FROM unnest(ARRAY['ratings','film_ratings','reviews','bookmarks']::regclass[]) AS c",
                &[],
            )
            .await?
            .get(0);
        Ok((
            bytes as u64,
            "pg_total_relation_size of the four tables (heap, indexes, TOAST), on disk".into(),
        ))
    }
    async fn rate(&self, r: Rating) -> Result<()> {
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached(
                "SELECT ugc_rate($1, $2::text::uuid, $3::int2, to_timestamp($4::float8 / 1000))",
            )
            .await?;
        client
            .execute(
                &statement,
                &[
                    &r.user,
                    &film_uuid_string(r.film),
                    &i16::from(r.score),
                    &(r.at_ms as f64),
                ],
            )
            .await?;
        Ok(())
    }
    async fn rate_batch(&self, mut ratings: Vec<Rating>) -> Result<()> {
        ratings.sort_by(|a, b| {
            film_uuid_string(a.film)
                .cmp(&film_uuid_string(b.film))
                .then(a.user.cmp(&b.user))
        });
        let users: Vec<i64> = ratings.iter().map(|r| r.user).collect();
        let films: Vec<String> = ratings.iter().map(|r| film_uuid_string(r.film)).collect();
        let scores: Vec<i16> = ratings.iter().map(|r| i16::from(r.score)).collect();
        let ats: Vec<f64> = ratings.iter().map(|r| r.at_ms as f64 / 1000.0).collect();
        let mut client = self.pool.get().await?;
        let transaction = client.transaction().await?;
        let statement = transaction
            .prepare_cached(
                "SELECT ugc_rate_batch($1, $2::text[]::uuid[], $3, ARRAY(SELECT to_timestamp(t) FROM unnest($4::float8[]) AS t))",
            )
            .await?;
        transaction
            .execute(&statement, &[&users, &films, &scores, &ats])
            .await?;
        transaction.commit().await?;
        Ok(())
    }
    async fn user_rating(&self, user: User, film: Film) -> Result<Option<u8>> {
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached(
                "SELECT score FROM ratings WHERE user_id = $1 AND film_id = $2::text::uuid",
            )
            .await?;
        let row = client
            .query_opt(&statement, &[&user, &film_uuid_string(film)])
            .await?;
        Ok(row.map(|row| row.get::<_, i16>(0) as u8))
    }
    async fn film_rating(&self, film: Film) -> Result<(u64, u64)> {
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached(
                "SELECT score_sum, votes FROM film_ratings WHERE film_id = $1::text::uuid",
            )
            .await?;
        let row = client
            .query_opt(&statement, &[&film_uuid_string(film)])
            .await?;
        Ok(row.map_or((0, 0), |row| {
            (row.get::<_, i64>(0) as u64, row.get::<_, i64>(1) as u64)
        }))
    }
    async fn reviews_newest(&self, film: Film) -> Result<usize> {
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT user_id, score, written_at, likes, dislikes, body FROM reviews \
                 WHERE film_id = $1::text::uuid ORDER BY written_at DESC LIMIT {REVIEW_PAGE}"
            ))
            .await?;
        Ok(client
            .query(&statement, &[&film_uuid_string(film)])
            .await?
            .len())
    }
    async fn reviews_top(&self, film: Film) -> Result<usize> {
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT user_id, score, written_at, likes, dislikes, body FROM reviews \
                 WHERE film_id = $1::text::uuid ORDER BY likes - dislikes DESC, written_at DESC LIMIT {REVIEW_PAGE}"
            ))
            .await?;
        Ok(client
            .query(&statement, &[&film_uuid_string(film)])
            .await?
            .len())
    }
    async fn bookmarks(&self, user: User) -> Result<usize> {
        let client = self.pool.get().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT film_id::text, added_at FROM bookmarks WHERE user_id = $1 ORDER BY added_at DESC LIMIT {BOOKMARK_PAGE}"
            ))
            .await?;
        Ok(client.query(&statement, &[&user]).await?.len())
    }
}
