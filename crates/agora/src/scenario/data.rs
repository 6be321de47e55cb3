//! Load-test scenarios drawn from the database: request paths (and a token) that `agora-bench`
//! cycles through, so a benchmark asks for what real users would, not for one hot row.
//!
//! Samples are deterministic for a given seed and database: `TABLESAMPLE ... REPEATABLE` picks
//! the rows and a seeded generator shuffles them and picks prefix lengths.

use agora_platform::db::DbPool;
use agora_platform::session::open_sessions;
use anyhow::{Context, bail};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// How often each prefix length is asked for, e.g. 2 letters 30%, 3 letters 40%, 4 letters 30%.
#[derive(Debug, Clone, PartialEq)]
pub struct PrefixMix(Vec<(usize, u32)>);

impl std::str::FromStr for PrefixMix {
    type Err = String;

    /// Parses "2=30,3=40,4=30" (length=weight, weights need not sum to 100).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut mix = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (length, weight) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?}: expected LENGTH=WEIGHT, e.g. 3=40"))?;
            let length: usize = length
                .trim()
                .parse()
                .map_err(|_| format!("{part:?}: length must be a whole number"))?;
            let weight: u32 = weight
                .trim()
                .parse()
                .map_err(|_| format!("{part:?}: weight must be a whole number"))?;
            if length == 0 {
                return Err(format!("{part:?}: a prefix has at least one letter"));
            }
            mix.push((length, weight));
        }
        if mix.iter().map(|(_, weight)| *weight).sum::<u32>() == 0 {
            return Err("the mix needs at least one positive weight".into());
        }
        Ok(PrefixMix(mix))
    }
}

impl std::fmt::Display for PrefixMix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let total: u32 = self.0.iter().map(|(_, weight)| weight).sum();
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|(length, weight)| {
                format!(
                    "{length} letters {:.0}%",
                    100.0 * f64::from(*weight) / f64::from(total)
                )
            })
            .collect();
        f.write_str(&parts.join(", "))
    }
}

impl PrefixMix {
    fn pick(&self, rng: &mut impl Rng) -> usize {
        let total: u32 = self.0.iter().map(|(_, weight)| weight).sum();
        let mut roll = rng.gen_range(0..total);
        for (length, weight) in &self.0 {
            if roll < *weight {
                return *length;
            }
            roll -= weight;
        }
        self.0[0].0
    }
}

fn encode(text: &str) -> String {
    utf8_percent_encode(text, NON_ALPHANUMERIC).to_string()
}

fn prefix(name: &str, letters: usize) -> &str {
    name.char_indices()
        .nth(letters)
        .map_or(name, |(end, _)| &name[..end])
}

/// Samples about `count` rows of `table` (as `columns`), repeatably for `seed`.
async fn sample(
    pool: &DbPool,
    table: &str,
    columns: &str,
    count: usize,
    seed: u64,
) -> anyhow::Result<Vec<tokio_postgres::Row>> {
    let db = pool.get().await.context("connecting to the database")?;
    let total: i64 = db
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await?
        .get(0);
    if total == 0 {
        bail!("table {table} is empty: seed the database first (agora seed users)");
    }
    // Oversample 3x so that the sample reaches `count` rows, then cut.
    let percent = (300.0 * count as f64 / total as f64).min(100.0);
    let rows = db
        .query(
            &format!(
                "SELECT {columns} FROM {table} TABLESAMPLE BERNOULLI ({percent}) REPEATABLE ({}) \
                 LIMIT {}",
                seed % 2_147_483_647,
                count * 3
            ),
            &[],
        )
        .await?;
    Ok(rows)
}

/// `count` search paths built from real users' names cut to prefix lengths drawn from `mix`.
pub async fn search_paths(
    pool: &DbPool,
    count: usize,
    mix: &PrefixMix,
    seed: u64,
) -> anyhow::Result<Vec<String>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut rows = sample(pool, "users", "first_name, second_name", count, seed).await?;
    rows.shuffle(&mut rng);
    Ok(rows
        .iter()
        .take(count)
        .map(|row| {
            let letters = mix.pick(&mut rng);
            let first_name: &str = row.get(0);
            let second_name: &str = row.get(1);
            format!(
                "/user/search?first_name={}&last_name={}",
                encode(prefix(first_name, letters)),
                encode(prefix(second_name, letters))
            )
        })
        .collect())
}

/// The "everything" smoke scenario: profile reads, searches and post reads of real rows, in
/// equal shares, interleaved.
pub async fn smoke_paths(pool: &DbPool, count: usize, seed: u64) -> anyhow::Result<Vec<String>> {
    let share = count.div_ceil(3);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mix: PrefixMix = "2=30,3=40,4=30".parse().expect("static mix");
    let searches = search_paths(pool, share, &mix, seed).await?;
    let mut users = sample(pool, "users", "id", share, seed).await?;
    users.shuffle(&mut rng);
    let mut posts = sample(pool, "posts", "id", share, seed).await?;
    posts.shuffle(&mut rng);
    let mut paths = Vec::with_capacity(count);
    for i in 0..share {
        if let Some(user) = users.get(i) {
            paths.push(format!("/user/get/{}", user.get::<_, i64>(0)));
        }
        if let Some(search) = searches.get(i) {
            paths.push(search.clone());
        }
        if let Some(post) = posts.get(i) {
            paths.push(format!("/post/get/{}", post.get::<_, i64>(0)));
        }
    }
    paths.truncate(count);
    Ok(paths)
}

/// What the feed benchmark needs, drawn from the database. Users get sessions created directly
/// (a login per user would spend seconds of Argon2 on setup), valid for a week.
#[derive(Debug, Default)]
pub struct FeedScenario {
    /// `/post/feed?offset=0&limit=10 TOKEN` per sampled reader (users with friends).
    pub reads: Vec<String>,
    /// `AUTHOR_TOKEN FOLLOWER_TOKEN`: ordinary authors and one follower of each.
    pub pairs: Vec<String>,
    /// `AUTHOR_ID AUTHOR_TOKEN FOLLOWERS FIRST_TOKEN LAST_TOKEN`: the author with the most
    /// followers, and the followers the fan-out reaches first and last.
    pub celebrity: Option<String>,
    /// One token per live socket.
    pub live_sockets: Vec<String>,
    /// `TOKEN SOCKETS`: live authors and how many of the sockets follow each.
    pub live_authors: Vec<String>,
}

#[derive(Debug, Clone, Copy)]
pub struct FeedScenarioOptions {
    pub readers: usize,
    pub pairs: usize,
    pub live_sockets: usize,
    pub live_authors: usize,
    /// Authors with this many followers are celebrities and excluded from `pairs`.
    pub celebrity_followers: i64,
    /// The top celebrity gets followers added until it has at least this many.
    pub celebrity_min_followers: i64,
    pub seed: u64,
}

/// Builds the feed benchmark's scenario. With `live_sockets > 0` it also makes each live socket
/// user follow one of the live authors (the only change it makes besides sessions).
pub async fn feed_scenario(
    pool: &DbPool,
    options: &FeedScenarioOptions,
) -> anyhow::Result<FeedScenario> {
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let db = pool.get().await?;
    let mut scenario = FeedScenario::default();

    let wanted = options.readers + options.live_sockets + options.live_authors;
    let mut sampled: Vec<i64> = sample(pool, "users", "id", wanted.max(1), options.seed)
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    sampled.shuffle(&mut rng);
    let readers: Vec<i64> = db
        .query(
            "SELECT u FROM unnest($1::bigint[]) u \
             WHERE EXISTS (SELECT 1 FROM friendships f WHERE f.user_id = u) LIMIT $2",
            &[&sampled, &(options.readers as i64)],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    scenario.reads = open_sessions(pool, &readers)
        .await?
        .into_iter()
        .map(|token| format!("/post/feed?offset=0&limit=10 {token}"))
        .collect();

    // Ordinary authors: friends of the readers with fewer followers than a celebrity.
    let pairs: Vec<(i64, i64)> = db
        .query(
            "SELECT f.friend_id, min(f.user_id) FROM friendships f \
             WHERE f.user_id = ANY($1) \
               AND (SELECT count(*) FROM (SELECT 1 FROM friendships g WHERE g.friend_id = f.friend_id \
                                          LIMIT $2) c) < $2 \
             GROUP BY f.friend_id ORDER BY f.friend_id LIMIT $3",
            &[&readers, &options.celebrity_followers, &(options.pairs as i64)],
        )
        .await?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let authors: Vec<i64> = pairs.iter().map(|pair| pair.0).collect();
    let followers: Vec<i64> = pairs.iter().map(|pair| pair.1).collect();
    let author_tokens = open_sessions(pool, &authors).await?;
    let follower_tokens = open_sessions(pool, &followers).await?;
    scenario.pairs = author_tokens
        .into_iter()
        .zip(follower_tokens)
        .map(|(author, follower)| format!("{author} {follower}"))
        .collect();

    if let Some(row) = db
        .query_opt(
            "SELECT friend_id, count(*) FROM friendships GROUP BY friend_id \
             ORDER BY count(*) DESC LIMIT 1",
            &[],
        )
        .await?
    {
        let (celebrity, mut count): (i64, i64) = (row.get(0), row.get(1));
        if count < options.celebrity_min_followers {
            count += db
                .execute(
                    "INSERT INTO friendships (user_id, friend_id) \
                     SELECT u.id, $1 FROM users u WHERE u.id <> $1 AND NOT EXISTS \
                       (SELECT 1 FROM friendships f WHERE f.user_id = u.id AND f.friend_id = $1) \
                     ORDER BY u.id LIMIT $2",
                    &[&celebrity, &(options.celebrity_min_followers - count)],
                )
                .await
                .context("adding followers to the celebrity")? as i64;
        }
        let edge = db
            .query_one(
                "SELECT min(user_id), max(user_id) FROM friendships WHERE friend_id = $1",
                &[&celebrity],
            )
            .await?;
        let users = [celebrity, edge.get(0), edge.get(1)];
        let tokens = open_sessions(pool, &users).await?;
        scenario.celebrity = Some(format!(
            "{celebrity} {} {count} {} {}",
            tokens[0], tokens[1], tokens[2]
        ));
    }

    if options.live_sockets > 0 && options.live_authors > 0 {
        let reading: std::collections::HashSet<i64> = readers.iter().copied().collect();
        let rest: Vec<i64> = sampled
            .iter()
            .copied()
            .filter(|user| !reading.contains(user))
            .collect();
        if rest.len() < options.live_sockets + options.live_authors {
            bail!(
                "the database has too few users for {} live sockets",
                options.live_sockets
            );
        }
        let (live_authors, rest) = rest.split_at(options.live_authors);
        let sockets = &rest[..options.live_sockets];
        let follows: Vec<i64> = (0..sockets.len())
            .map(|i| live_authors[i % live_authors.len()])
            .collect();
        db.execute(
            "INSERT INTO friendships (user_id, friend_id) \
             SELECT * FROM unnest($1::bigint[], $2::bigint[]) ON CONFLICT DO NOTHING",
            &[&sockets, &follows],
        )
        .await
        .context("making live sockets follow the live authors")?;
        scenario.live_sockets = open_sessions(pool, sockets).await?;
        let tokens = open_sessions(pool, live_authors).await?;
        scenario.live_authors = tokens
            .into_iter()
            .enumerate()
            .map(|(k, token)| {
                let following = (0..sockets.len())
                    .filter(|i| i % live_authors.len() == k)
                    .count();
                format!("{token} {following}")
            })
            .collect();
    }
    Ok(scenario)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_parses_and_rejects_nonsense() {
        let mix: PrefixMix = "2=30, 3=40,4=30".parse().unwrap();
        assert_eq!(mix.0, vec![(2, 30), (3, 40), (4, 30)]);
        assert_eq!(
            mix.to_string(),
            "2 letters 30%, 3 letters 40%, 4 letters 30%"
        );
        for bad in ["", "3", "0=1", "2=0", "x=1", "2=-1"] {
            assert!(bad.parse::<PrefixMix>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn prefixes_count_letters_not_bytes() {
        assert_eq!(prefix("Анна", 2), "Ан");
        assert_eq!(prefix("Ли", 4), "Ли");
        assert_eq!(encode("Ан"), "%D0%90%D0%BD");
    }

    #[test]
    fn picks_follow_the_weights() {
        let mix: PrefixMix = "2=1,3=3".parse().unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let threes = (0..4000).filter(|_| mix.pick(&mut rng) == 3).count();
        assert!((2800..3200).contains(&threes), "{threes}");
    }
}

/// The dialogs benchmark's requests: `dialogs` random pairs of `users` sampled users, each
/// user with a fresh session. Sends go both ways (`POST PATH TOKEN JSON` lines for
/// agora-bench); list reads are each dialog's first page, read by either side.
/// Sessions for `users` sampled users, the shop benchmark's shoppers: one token per user.
pub async fn shoppers(pool: &DbPool, users: usize, seed: u64) -> anyhow::Result<Vec<String>> {
    let sampled: Vec<i64> = sample(pool, "users", "id", users.max(1), seed)
        .await?
        .iter()
        .map(|row| row.get(0))
        .take(users.max(1))
        .collect();
    if sampled.is_empty() {
        bail!("the shop scenario needs users (agora seed users)");
    }
    Ok(open_sessions(pool, &sampled).await?)
}

/// Sampled users with a fresh session each: (id, token).
pub async fn users_with_sessions(
    pool: &DbPool,
    users: usize,
    seed: u64,
) -> anyhow::Result<Vec<(i64, String)>> {
    let sampled: Vec<i64> = sample(pool, "users", "id", users.max(1), seed)
        .await?
        .iter()
        .map(|row| row.get(0))
        .take(users.max(1))
        .collect();
    if sampled.is_empty() {
        bail!("this scenario needs users (agora seed users)");
    }
    let tokens = open_sessions(pool, &sampled).await?;
    Ok(sampled.into_iter().zip(tokens).collect())
}

#[derive(Debug, Default)]
pub struct DialogsScenario {
    pub sends: Vec<String>,
    pub lists: Vec<String>,
}

pub async fn dialogs_scenario(
    pool: &DbPool,
    users: usize,
    dialogs: usize,
    seed: u64,
) -> anyhow::Result<DialogsScenario> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut sampled: Vec<i64> = sample(pool, "users", "id", users.max(2), seed)
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    sampled.truncate(users.max(2));
    if sampled.len() < 2 {
        bail!("the dialogs scenario needs at least two users");
    }
    let tokens = open_sessions(pool, &sampled).await?;
    let mut scenario = DialogsScenario::default();
    for at in 0..dialogs {
        let a = rng.gen_range(0..sampled.len());
        let mut b = rng.gen_range(0..sampled.len() - 1);
        if b >= a {
            b += 1;
        }
        for (from, to) in [(a, b), (b, a)] {
            scenario.sends.push(format!(
                "POST /dialog/{}/send {} {{\"text\":\"benchmark message {at}, from {} to {}\"}}",
                sampled[to], tokens[from], sampled[from], sampled[to]
            ));
        }
        let (reader, other) = if at % 2 == 0 { (a, b) } else { (b, a) };
        scenario.lists.push(format!(
            "/dialog/{}/list?limit=20 {}",
            sampled[other], tokens[reader]
        ));
    }
    scenario.sends.shuffle(&mut rng);
    Ok(scenario)
}

/// The web front end benchmark's users: `readers` readers who follow the same `authors`, each
/// author with `posts_per_author` posts, so every reader's feed is full (1000 posts when
/// authors × posts ≥ 1000). Writes posts and friendships (idempotent for the same seed: the
/// authors' posts are added only once) and a fresh session per reader.
pub struct WebScenario {
    /// `(reader token, author id)` per reader: author pages are visited round-robin.
    pub readers: Vec<(String, i64)>,
}

pub async fn web_scenario(
    pool: &DbPool,
    readers: usize,
    authors: usize,
    posts_per_author: usize,
    seed: u64,
) -> anyhow::Result<WebScenario> {
    let sampled: Vec<i64> = sample(pool, "users", "id", readers + authors, seed)
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    anyhow::ensure!(
        sampled.len() >= readers + authors,
        "the database has too few users for {readers} readers and {authors} authors"
    );
    let (author_ids, reader_ids) = sampled.split_at(authors);
    let reader_ids = &reader_ids[..readers];
    let db = pool.get().await?;
    // Posts of ~200 characters, a typical length; added up to the wanted count per author.
    db.execute(
        "INSERT INTO posts (author_id, text) \
         SELECT a, 'Post ' || g || ' by ' || a || ': ' || repeat('a social network under load ', 7) \
         FROM unnest($1::bigint[]) a CROSS JOIN generate_series(1, $2::int) g \
         WHERE (SELECT count(*) FROM posts WHERE author_id = a) < $2::int",
        &[&author_ids, &(posts_per_author as i32)],
    )
    .await?;
    db.execute(
        "INSERT INTO friendships (user_id, friend_id) \
         SELECT r, a FROM unnest($1::bigint[]) r CROSS JOIN unnest($2::bigint[]) a \
         ON CONFLICT DO NOTHING",
        &[&reader_ids, &author_ids],
    )
    .await?;
    let tokens = open_sessions(pool, reader_ids).await?;
    Ok(WebScenario {
        readers: tokens
            .into_iter()
            .enumerate()
            .map(|(at, token)| (token, author_ids[at % author_ids.len()]))
            .collect(),
    })
}
