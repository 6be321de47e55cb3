//! The study's data: ratings, reviews and bookmarks of users on films, generated from a seed so
//! that every store receives exactly the same rows, at a realistic skew (a film's share of the
//! activity falls as 1/rank: the most popular film of 100,000 gets about 8 % of the ratings).
//!
//! Rows are produced film by film, in chunks, so nothing holds the whole data set in memory. The
//! users of one film are distinct by construction: the i-th is `(a·i + b) mod users` with `a`
//! coprime to the number of users, a permutation, so no (user, film) pair repeats.

/// Sizes of the generated data set.
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
pub struct Scale {
    pub users: u64,
    pub films: u32,
    pub ratings: u64,
    pub reviews: u64,
    pub bookmarks: u64,
}

impl Scale {
    /// The brief's order of magnitude: 10M ratings, 1M reviews, 2M bookmarks, 100k films, 1M
    /// users, times `factor`.
    pub fn times(factor: f64) -> Self {
        let of = |n: f64| ((n * factor).round() as u64).max(1);
        Self {
            users: of(1_000_000.0).max(1_000),
            films: of(100_000.0).max(100) as u32,
            ratings: of(10_000_000.0),
            reviews: of(1_000_000.0),
            bookmarks: of(2_000_000.0),
        }
    }
}

pub type Film = u32;
pub type User = i64;

#[derive(Clone, Debug)]
pub struct Rating {
    pub user: User,
    pub film: Film,
    pub score: u8,
    pub at_ms: i64,
}

#[derive(Clone, Debug)]
pub struct Review {
    pub user: User,
    pub film: Film,
    pub score: u8,
    pub at_ms: i64,
    pub likes: u32,
    pub dislikes: u32,
    pub text: String,
}

#[derive(Clone, Debug)]
pub struct Bookmark {
    pub user: User,
    pub film: Film,
    pub at_ms: i64,
}

/// A film's id: a version-4-shaped UUID derived from its number, the same in every store.
pub fn film_uuid(film: Film) -> [u8; 16] {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&mix(u64::from(film) ^ 0x5eed_f11e).to_be_bytes());
    bytes[8..].copy_from_slice(&mix(u64::from(film).wrapping_add(0x9e37)).to_be_bytes());
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    bytes
}

pub fn film_uuid_string(film: Film) -> String {
    let b = film_uuid(film);
    let hex = |range: std::ops::Range<usize>| {
        b[range]
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect::<String>()
    };
    format!(
        "{}-{}-{}-{}-{}",
        hex(0..4),
        hex(4..6),
        hex(6..8),
        hex(8..10),
        hex(10..16)
    )
}

/// User ids start high, like agora's (time-ordered 64-bit ids), so no store gets small numbers
/// it could pack tighter than real ids.
pub const FIRST_USER: User = 724_775_731_200_000;

pub fn user_id(index: u64) -> User {
    FIRST_USER + index as User
}

/// Two years of activity, ending at a fixed moment so runs are reproducible.
const END_MS: i64 = 1_790_000_000_000;
const SPAN_MS: i64 = 2 * 365 * 24 * 3600 * 1000;

/// splitmix64: a fast, well-mixed generator; the study needs reproducibility, not secrecy.
#[derive(Clone, Debug)]
pub struct Dice(u64);

impl Dice {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n.max(1))) >> 64) as u64
    }
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// How many rows each film gets out of `total`, at 1/rank, and which users they come from.
#[derive(Clone, Debug)]
pub struct Spread {
    users: u64,
    /// Per film: its row count, and the permutation `(a·i + b) mod users` choosing its users.
    films: Vec<(u64, u64, u64)>,
    /// Cumulative row counts, to draw a film in proportion to its rows.
    cumulative: Vec<u64>,
}

impl Spread {
    pub fn new(scale: &Scale, total: u64, seed: u64) -> Self {
        let harmonic: f64 = (1..=scale.films).map(|rank| 1.0 / f64::from(rank)).sum();
        let mut dice = Dice::new(seed);
        let mut films = Vec::with_capacity(scale.films as usize);
        let mut cumulative = Vec::with_capacity(scale.films as usize);
        let mut sum = 0;
        for rank in 1..=scale.films {
            let share = total as f64 / (harmonic * f64::from(rank));
            let count = (share.round() as u64).clamp(0, scale.users);
            let mut a = dice.below(scale.users.max(2) - 1) + 1;
            while gcd(a, scale.users) != 1 {
                a += 1;
            }
            let b = dice.below(scale.users);
            films.push((count, a, b));
            sum += count;
            cumulative.push(sum);
        }
        Self {
            users: scale.users,
            films,
            cumulative,
        }
    }

    pub fn rows(&self) -> u64 {
        self.cumulative.last().copied().unwrap_or(0)
    }

    pub fn count(&self, film: Film) -> u64 {
        self.films[film as usize].0
    }

    /// The user of a film's i-th row.
    pub fn user(&self, film: Film, i: u64) -> User {
        let (_, a, b) = self.films[film as usize];
        user_id(((u128::from(a) * u128::from(i) + u128::from(b)) % u128::from(self.users)) as u64)
    }

    /// A film drawn in proportion to its rows (popular films are read more, too).
    pub fn draw_film(&self, dice: &mut Dice) -> Film {
        let at = dice.below(self.rows().max(1));
        self.cumulative.partition_point(|&c| c <= at) as Film
    }

    /// An existing (user, film) pair, drawn in proportion to the rows.
    pub fn draw_pair(&self, dice: &mut Dice) -> (User, Film) {
        let film = self.draw_film(dice);
        let i = dice.below(self.count(film).max(1));
        (self.user(film, i), film)
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// A film's typical score: the same film is liked about the same by everyone.
fn film_mood(film: Film) -> i64 {
    3 + (mix(u64::from(film) ^ 0xfeed) % 6) as i64
}

pub fn score_for(film: Film, dice: &mut Dice) -> u8 {
    (film_mood(film) + dice.below(7) as i64 - 3).clamp(0, 10) as u8
}

fn moment(dice: &mut Dice) -> i64 {
    END_MS - dice.below(SPAN_MS as u64) as i64
}

const WORDS: [&str; 24] = [
    "the",
    "film",
    "plot",
    "actor",
    "scene",
    "music",
    "slow",
    "brilliant",
    "ending",
    "camera",
    "story",
    "dull",
    "funny",
    "dark",
    "sequel",
    "cast",
    "script",
    "twist",
    "long",
    "worth",
    "watching",
    "again",
    "never",
    "loved",
];

fn review_text(dice: &mut Dice) -> String {
    // 60–600 bytes, most of them short.
    let target = 60 + (dice.unit().powi(2) * 540.0) as usize;
    let mut text = String::with_capacity(target + 12);
    while text.len() < target {
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(WORDS[dice.below(WORDS.len() as u64) as usize]);
    }
    text
}

/// Film by film, chunk by chunk: every rating of the data set, each once.
pub fn ratings(spread: &Spread, chunk: usize) -> impl Iterator<Item = Vec<Rating>> + '_ {
    let mut dice = Dice::new(0x7a71);
    chunked(spread, chunk, move |film, i| Rating {
        user: spread.user(film, i),
        film,
        score: score_for(film, &mut dice),
        at_ms: moment(&mut dice),
    })
}

pub fn reviews(spread: &Spread, chunk: usize) -> impl Iterator<Item = Vec<Review>> + '_ {
    let mut dice = Dice::new(0x4e71e3);
    chunked(spread, chunk, move |film, i| {
        // Votes on reviews are skewed too: most get none, a few get thousands.
        let votes = (dice.unit().powi(6) * 3000.0) as u32;
        let dislikes = (f64::from(votes) * dice.unit() * 0.5) as u32;
        Review {
            user: spread.user(film, i),
            film,
            score: score_for(film, &mut dice),
            at_ms: moment(&mut dice),
            likes: votes - dislikes,
            dislikes,
            text: review_text(&mut dice),
        }
    })
}

pub fn bookmarks(spread: &Spread, chunk: usize) -> impl Iterator<Item = Vec<Bookmark>> + '_ {
    let mut dice = Dice::new(0xb00c);
    chunked(spread, chunk, move |film, i| Bookmark {
        user: spread.user(film, i),
        film,
        at_ms: moment(&mut dice),
    })
}

fn chunked<'a, T: 'a>(
    spread: &'a Spread,
    chunk: usize,
    mut make: impl FnMut(Film, u64) -> T + 'a,
) -> impl Iterator<Item = Vec<T>> + 'a {
    let mut film: Film = 0;
    let mut i = 0u64;
    std::iter::from_fn(move || {
        let mut rows = Vec::with_capacity(chunk);
        while rows.len() < chunk && (film as usize) < spread.films.len() {
            if i < spread.count(film) {
                rows.push(make(film, i));
                i += 1;
            } else {
                film += 1;
                i = 0;
            }
        }
        (!rows.is_empty()).then_some(rows)
    })
}

/// Per film: the sum and count of its ratings, for the stores that keep them as counters.
pub fn rating_totals(spread: &Spread) -> Vec<(u64, u64)> {
    let mut totals = vec![(0u64, 0u64); spread.films.len()];
    for chunk in ratings(spread, 100_000) {
        for rating in chunk {
            let total = &mut totals[rating.film as usize];
            total.0 += u64::from(rating.score);
            total.1 += 1;
        }
    }
    totals
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_distinct_and_skewed() {
        let scale = Scale::times(0.001);
        let spread = Spread::new(&scale, 20_000, 1);
        let mut seen = std::collections::HashSet::new();
        for chunk in ratings(&spread, 1000) {
            for rating in chunk {
                assert!(
                    seen.insert((rating.user, rating.film)),
                    "{rating:?} repeats"
                );
                assert!(rating.score <= 10);
            }
        }
        assert_eq!(seen.len() as u64, spread.rows());
        assert!(spread.count(0) > 10 * spread.count(50));
    }

    #[test]
    fn film_ids_look_like_uuids() {
        let id = film_uuid_string(7);
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert_ne!(film_uuid(7), film_uuid(8));
    }
}
