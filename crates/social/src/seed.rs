//! `agora seed`: a deterministic, realistic population loaded with binary `COPY`.
//!
//! Names, surnames (both gender forms), cities and phrases come from the TSV files in
//! `crates/social/data/`, which we compiled; weights make common names common. The same
//! `--seed` always produces the same users, friendships and posts.
//!
//! Speed: rows stream straight into `COPY ... FROM STDIN BINARY`; the secondary indexes are
//! dropped first and built once at the end (one sort instead of a million index inserts). All
//! seeded users share one password hash, computed once: a million Argon2id hashes would take
//! hours and measure nothing.

use std::pin::pin;

use agora_platform::credentials::PasswordHasher;
use agora_platform::ids::{self, IdParts};
use rand::distributions::WeightedIndex;
use rand::prelude::*;
use rand_chacha::ChaCha8Rng;
use time::{Date, Duration, OffsetDateTime};
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, NoTls};

/// The password of every seeded user.
pub const SEED_PASSWORD: &str = "seed-password";

/// Same definitions as the migrations (V1, V4); rebuilt after the bulk load.
const USER_NAME_INDEX: &str = "CREATE INDEX users_name_prefix_idx \
    ON users (lower(second_name) text_pattern_ops, lower(first_name) text_pattern_ops)";
const FRIEND_INDEX: &str = "CREATE INDEX friendships_followers_idx \
    ON friendships (friend_id, user_id) INCLUDE (since_tick)";
const POST_INDEX: &str = "CREATE INDEX posts_author_id_idx ON posts (author_id, id DESC)";

/// Seeded users register one per minute from here on, so their ids are in the past.
const USERS_START_UNIX_MS: i64 = 1_704_153_600_000; // 2024-01-02
/// Seeded posts spread over the 30 days before the seeding run.
const POSTS_SPAN_MS: i64 = 30 * 24 * 3600 * 1000;

#[derive(Debug, Clone)]
pub struct SeedOptions {
    pub users: u64,
    pub seed: u64,
    /// Mean number of ordinary friends per user (geometric distribution).
    pub friends_mean: f64,
    /// The first `celebrities` users are followed by many: celebrity k by
    /// `celebrity_share / (k + 1)` of all users.
    pub celebrities: u64,
    pub celebrity_share: f64,
    /// Mean posts per user; authors are drawn at random, so activity varies.
    pub posts_mean: f64,
}

/// Where the seeder is, for a progress display.
pub trait Progress {
    fn stage(&self, name: &str, total: u64);
    fn advance(&self, done: u64);
    fn finish_stage(&self);
}

#[derive(Debug, Clone, Default)]
pub struct SeedSummary {
    pub users: u64,
    pub friendships: u64,
    pub posts: u64,
    pub first_user_id: i64,
}

struct Weighted<T> {
    items: Vec<T>,
    index: WeightedIndex<u64>,
}

impl<T> Weighted<T> {
    fn pick<'a>(&'a self, rng: &mut ChaCha8Rng) -> &'a T {
        &self.items[self.index.sample(rng)]
    }
}

/// Rows of a TSV data file: comment lines and the header skipped.
fn rows(text: &'static str) -> impl Iterator<Item = Vec<&'static str>> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .skip(1)
        .map(|line| line.split('\t').collect())
}

fn weighted<T>(text: &'static str, item: impl Fn(&[&'static str]) -> T) -> Weighted<T> {
    let (items, weights): (Vec<T>, Vec<u64>) = rows(text)
        .map(|row| {
            (
                item(&row),
                row.last().and_then(|w| w.parse().ok()).unwrap_or(1),
            )
        })
        .unzip();
    let index = WeightedIndex::new(weights).expect("data files have positive weights");
    Weighted { items, index }
}

/// The word lists, parsed once.
pub struct Vocabulary {
    male_names: Weighted<&'static str>,
    female_names: Weighted<&'static str>,
    surnames: Weighted<(&'static str, &'static str)>,
    cities: Weighted<&'static str>,
    interests: Vec<&'static str>,
    post_phrases: Vec<&'static str>,
}

impl Vocabulary {
    pub fn load() -> Self {
        Self {
            male_names: weighted(include_str!("../data/first_names_male.tsv"), |r| r[0]),
            female_names: weighted(include_str!("../data/first_names_female.tsv"), |r| r[0]),
            surnames: weighted(include_str!("../data/surnames.tsv"), |r| (r[0], r[1])),
            cities: weighted(include_str!("../data/cities.tsv"), |r| r[0]),
            interests: rows(include_str!("../data/interests.tsv"))
                .map(|r| r[0])
                .collect(),
            post_phrases: rows(include_str!("../data/post_phrases.tsv"))
                .map(|r| r[0])
                .collect(),
        }
    }
}

/// One generated user.
#[derive(Debug, Clone, PartialEq)]
pub struct SeedUser {
    pub id: i64,
    pub first_name: &'static str,
    pub second_name: &'static str,
    pub birthdate: Date,
    pub city: &'static str,
    pub biography: Option<String>,
}

/// The i-th user of a population: a pure function of (seed, i), so any slice can be regenerated.
pub fn user(vocabulary: &Vocabulary, seed: u64, i: u64) -> SeedUser {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let male = rng.gen_bool(0.46);
    let first_name = if male {
        vocabulary.male_names.pick(&mut rng)
    } else {
        vocabulary.female_names.pick(&mut rng)
    };
    let (male_surname, female_surname) = *vocabulary.surnames.pick(&mut rng);
    // Ages 14 to 80, most around 35-45: the sum of two uniforms is a triangle.
    let age_days = 14 * 365 + (rng.gen_range(0..33 * 365) + rng.gen_range(0..33 * 365));
    let birthdate = date_of_seed_run() - Duration::days(age_days);
    let biography = rng.gen_bool(0.7).then(|| {
        let first = vocabulary.interests.choose(&mut rng).expect("interests");
        let second = vocabulary.interests.choose(&mut rng).expect("interests");
        if first == second {
            format!("Люблю {first}.")
        } else {
            format!("Люблю {first} и {second}.")
        }
    });
    SeedUser {
        id: user_id(i),
        first_name,
        second_name: if male { male_surname } else { female_surname },
        birthdate,
        city: vocabulary.cities.pick(&mut rng),
        biography,
    }
}

/// Birthdates are relative to a fixed day so a seed reproduces exactly, whatever the date.
fn date_of_seed_run() -> Date {
    Date::from_calendar_date(2026, time::Month::January, 1).expect("valid date")
}

pub fn user_id(i: u64) -> i64 {
    ids::compose(IdParts {
        unix_ms: USERS_START_UNIX_MS + i as i64 * 60_000,
        shard: 0,
        sequence: 0,
    })
}

async fn connect(database_url: &str) -> anyhow::Result<Client> {
    let (client, connection) = tokio_postgres::connect(database_url, NoTls).await?;
    tokio::spawn(connection);
    client
        .batch_execute("SET synchronous_commit = off; SET maintenance_work_mem = '256MB'")
        .await?;
    Ok(client)
}

/// Loads a population into an empty database; refuses one that already has users.
pub async fn seed(
    database_url: &str,
    options: &SeedOptions,
    progress: &dyn Progress,
) -> anyhow::Result<SeedSummary> {
    let client = connect(database_url).await?;
    let existing: i64 = client
        .query_one("SELECT count(*) FROM users", &[])
        .await?
        .get(0);
    if existing > 0 {
        anyhow::bail!(
            "the database already has {existing} users; seed needs an empty one \
             (drop and re-create it, e.g. `./dev bench search --reseed`)"
        );
    }
    let vocabulary = Vocabulary::load();
    let password_hash = PasswordHasher::new(1, 1)
        .hash(SEED_PASSWORD.to_owned())
        .await?;
    let mut summary = SeedSummary {
        first_user_id: user_id(0),
        ..SeedSummary::default()
    };

    // Foreign keys are checked row by row by triggers: 5M friendship rows spend most of their
    // time there. The generator only emits ids of users it has loaded, so a superuser session
    // skips the triggers; other roles keep them and are merely slower.
    if client
        .batch_execute("SET session_replication_role = replica")
        .await
        .is_err()
    {
        tracing::info!("not a superuser: foreign keys are checked during the load (slower)");
    }
    client
        .batch_execute("DROP INDEX IF EXISTS users_name_prefix_idx; DROP INDEX IF EXISTS friendships_followers_idx; DROP INDEX IF EXISTS posts_author_id_idx")
        .await?;
    summary.users = copy_users(&client, &vocabulary, options, &password_hash, progress).await?;
    summary.friendships = copy_friendships(&client, options, progress).await?;
    summary.posts = copy_posts(&client, &vocabulary, options, progress).await?;

    progress.stage("building indexes and statistics", 4);
    for (done, statement) in [
        USER_NAME_INDEX,
        FRIEND_INDEX,
        POST_INDEX,
        "ANALYZE users, friendships, posts",
    ]
    .into_iter()
    .enumerate()
    {
        client.batch_execute(statement).await?;
        progress.advance(done as u64 + 1);
    }
    progress.finish_stage();
    Ok(summary)
}

const REPORT_EVERY: u64 = 10_000;

async fn copy_users(
    client: &Client,
    vocabulary: &Vocabulary,
    options: &SeedOptions,
    password_hash: &str,
    progress: &dyn Progress,
) -> anyhow::Result<u64> {
    progress.stage("users", options.users);
    let sink = client
        .copy_in("COPY users (id, first_name, second_name, birthdate, biography, city, password_hash, created_at) FROM STDIN BINARY")
        .await?;
    let types = [
        Type::INT8,
        Type::TEXT,
        Type::TEXT,
        Type::DATE,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::TIMESTAMPTZ,
    ];
    let mut writer = pin!(BinaryCopyInWriter::new(sink, &types));
    for i in 0..options.users {
        let user = user(vocabulary, options.seed, i);
        let created_at = OffsetDateTime::from_unix_timestamp_nanos(
            ids::decompose(user.id).unix_ms as i128 * 1_000_000,
        )?;
        writer
            .as_mut()
            .write(&[
                &user.id,
                &user.first_name,
                &user.second_name,
                &user.birthdate,
                &user.biography,
                &user.city,
                &password_hash,
                &created_at,
            ])
            .await?;
        if i % REPORT_EVERY == 0 {
            progress.advance(i);
        }
    }
    let written = writer.finish().await?;
    progress.advance(options.users);
    progress.finish_stage();
    Ok(written)
}

async fn copy_friendships(
    client: &Client,
    options: &SeedOptions,
    progress: &dyn Progress,
) -> anyhow::Result<u64> {
    if options.users < 2 {
        return Ok(0);
    }
    progress.stage("friendships", options.users);
    let sink = client
        .copy_in("COPY friendships (user_id, friend_id) FROM STDIN BINARY")
        .await?;
    let mut writer = pin!(BinaryCopyInWriter::new(sink, &[Type::INT8, Type::INT8]));
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed ^ 0xF1E2_D3C4);
    // Geometric degree with the requested mean: most users have a few friends, some many.
    let continue_probability = options.friends_mean / (options.friends_mean + 1.0);
    let celebrities = options.celebrities.min(options.users);
    let mut friends: Vec<u64> = Vec::new();
    for i in 0..options.users {
        friends.clear();
        for k in 0..celebrities {
            if k != i && rng.gen_bool((options.celebrity_share / (k + 1) as f64).clamp(0.0, 1.0)) {
                friends.push(k);
            }
        }
        while options.friends_mean > 0.0
            && rng.gen_bool(continue_probability)
            && friends.len() < 10_000
        {
            let friend = rng.gen_range(0..options.users);
            if friend != i && !friends.contains(&friend) {
                friends.push(friend);
            }
        }
        for &friend in &friends {
            writer
                .as_mut()
                .write(&[&user_id(i), &user_id(friend)])
                .await?;
        }
        if i % REPORT_EVERY == 0 {
            progress.advance(i);
        }
    }
    let written = writer.finish().await?;
    progress.advance(options.users);
    progress.finish_stage();
    Ok(written)
}

async fn copy_posts(
    client: &Client,
    vocabulary: &Vocabulary,
    options: &SeedOptions,
    progress: &dyn Progress,
) -> anyhow::Result<u64> {
    let total = (options.users as f64 * options.posts_mean).round() as u64;
    if total == 0 || options.users == 0 {
        return Ok(0);
    }
    progress.stage("posts", total);
    let sink = client
        .copy_in("COPY posts (id, author_id, text, created_at) FROM STDIN BINARY")
        .await?;
    let mut writer = pin!(BinaryCopyInWriter::new(
        sink,
        &[Type::INT8, Type::INT8, Type::TEXT, Type::TIMESTAMPTZ]
    ));
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed ^ 0x9057_5EED);
    let end_ms = OffsetDateTime::now_utc().unix_timestamp() * 1000 - 60_000;
    let start_ms = end_ms - POSTS_SPAN_MS;
    for j in 0..total {
        // Evenly spaced in time; ids stay unique because posts sharing a millisecond get
        // consecutive sequence numbers (fewer than 1024 per ms for any realistic count).
        let unix_ms = start_ms + (j as i128 * POSTS_SPAN_MS as i128 / total as i128) as i64;
        let id = ids::compose(IdParts {
            unix_ms,
            shard: 0,
            sequence: j as i64,
        });
        let author = user_id(rng.gen_range(0..options.users));
        let sentences = rng.gen_range(1..=3);
        let text = vocabulary
            .post_phrases
            .choose_multiple(&mut rng, sentences)
            .copied()
            .collect::<Vec<_>>()
            .join(" ");
        let created_at = OffsetDateTime::from_unix_timestamp_nanos(unix_ms as i128 * 1_000_000)?;
        writer
            .as_mut()
            .write(&[&id, &author, &text, &created_at])
            .await?;
        if j % REPORT_EVERY == 0 {
            progress.advance(j);
        }
    }
    let written = writer.finish().await?;
    progress.advance(total);
    progress.finish_stage();
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_deterministic_and_genders_agree() {
        let vocabulary = Vocabulary::load();
        assert_eq!(user(&vocabulary, 7, 123), user(&vocabulary, 7, 123));
        assert_ne!(user(&vocabulary, 7, 123), user(&vocabulary, 8, 123));
        let female_surnames: std::collections::HashSet<_> =
            vocabulary.surnames.items.iter().map(|(_, f)| *f).collect();
        for i in 0..2_000 {
            let user = user(&vocabulary, 1, i);
            let female = vocabulary.female_names.items.contains(&user.first_name);
            let male_form = vocabulary
                .surnames
                .items
                .iter()
                .any(|(m, _)| *m == user.second_name);
            let female_form = female_surnames.contains(user.second_name);
            assert!(if female { female_form } else { male_form }, "{user:?}");
        }
    }

    #[test]
    fn common_names_are_common() {
        let vocabulary = Vocabulary::load();
        let ivanovs = (0..20_000)
            .filter(|&i| user(&vocabulary, 3, i).second_name.starts_with("Иванов"))
            .count();
        // Иванов is the most frequent surname, about 1.3% of people.
        assert!((150..400).contains(&ivanovs), "{ivanovs} Ivanovs in 20000");
    }

    #[test]
    fn seeded_ids_are_unique_and_in_the_past() {
        assert!(user_id(0) < user_id(1));
        let now_ms = OffsetDateTime::now_utc().unix_timestamp() * 1000;
        assert!(ids::decompose(user_id(1_000_000)).unix_ms < now_ms);
    }
}
