//! Load-test scenarios drawn from the database: request paths (and a token) that `agora-bench`
//! cycles through, so a benchmark asks for what real users would, not for one hot row.
//!
//! Samples are deterministic for a given seed and database: `TABLESAMPLE ... REPEATABLE` picks
//! the rows and a seeded generator shuffles them and picks prefix lengths.

use agora_platform::db::DbPool;
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
