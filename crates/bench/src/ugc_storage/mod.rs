//! The UGC storage study (`agora-bench ugc-storage`, docs/benchmarks/ugc-storage.md): the same
//! generated ratings, reviews and bookmarks loaded into each candidate store, then the API's
//! exact queries timed alone and while ratings keep arriving, and its writes timed single and
//! batched. Each store gets the same clients, the same keys in the same order and the same
//! offered write rate; only the store differs.

pub mod clickhouse;
pub mod data;
pub mod iproto;
pub mod postgres;
pub mod redis_store;
pub mod report;
pub mod tarantool;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use data::{Bookmark, Dice, Film, Rating, Review, Scale, Spread, User};

/// Rows per bulk-load request: large enough that per-request costs vanish, small enough to keep
/// the generator's memory flat.
const LOAD_CHUNK: usize = 10_000;
/// Ratings per batched write (an API instance flushing what arrived in the last moment).
pub const BATCH: usize = 100;
/// Page sizes the API would ask for.
pub const REVIEW_PAGE: usize = 20;
pub const BOOKMARK_PAGE: usize = 50;

#[derive(Args, Clone, Debug)]
pub struct StudyArgs {
    /// Stores to study, in this order.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "postgres,clickhouse,redis,tarantool"
    )]
    pub stores: Vec<String>,
    #[arg(long, env = "AGORA_UGC_POSTGRES_URL")]
    pub postgres_url: Option<String>,
    #[arg(long, env = "AGORA_UGC_CLICKHOUSE_URL")]
    pub clickhouse_url: Option<String>,
    #[arg(long, env = "AGORA_UGC_REDIS_URL")]
    pub redis_url: Option<String>,
    /// host:port of Tarantool's binary protocol.
    #[arg(long, env = "AGORA_UGC_TARANTOOL_ADDR")]
    pub tarantool_addr: Option<String>,
    #[arg(long, env = "AGORA_UGC_TARANTOOL_USER", default_value = "agora")]
    pub tarantool_user: String,
    #[arg(long, env = "AGORA_UGC_TARANTOOL_PASSWORD", default_value = "agora")]
    pub tarantool_password: String,
    /// Data set size relative to 10M ratings, 1M reviews, 2M bookmarks, 100k films, 1M users.
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Concurrent clients of each measured phase.
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// Ratings per second written in the background while reads are measured, in batches of 100.
    #[arg(long, default_value_t = 1000)]
    pub background_ratings_per_sec: u32,
    #[arg(long, default_value_t = 2)]
    pub warmup_secs: u64,
    #[arg(long, default_value_t = 10)]
    pub duration_secs: u64,
    /// Directory for STEM.json, STEM.md and the charts.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value = "ugc-storage")]
    pub stem: String,
    /// Markdown put before the figures.
    #[arg(long)]
    pub preamble: Option<PathBuf>,
    /// Markdown put after them (the choice).
    #[arg(long)]
    pub conclusion: Option<PathBuf>,
    /// Skip loading: the stores already hold this scale's data from an earlier run.
    #[arg(long)]
    pub reuse_data: bool,
}

/// What every candidate must do: the API's queries and writes, and a bulk load.
pub trait Store: Clone + Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// The schema as created, for the report.
    fn schema(&self) -> &'static str;
    fn version(&self) -> impl Future<Output = Result<String>> + Send;
    /// Drop whatever an earlier run left and create the schema.
    fn reset(&self) -> impl Future<Output = Result<()>> + Send;
    fn load_ratings(&self, rows: Vec<Rating>) -> impl Future<Output = Result<()>> + Send;
    /// Per film, the sum and count of its ratings (stores that keep counters load them).
    fn load_totals(&self, totals: Vec<(Film, u64, u64)>)
    -> impl Future<Output = Result<()>> + Send;
    fn load_reviews(&self, rows: Vec<Review>) -> impl Future<Output = Result<()>> + Send;
    fn load_bookmarks(&self, rows: Vec<Bookmark>) -> impl Future<Output = Result<()>> + Send;
    /// Build what is faster to build after the load (indexes, merges, statistics).
    fn finish_load(&self) -> impl Future<Output = Result<()>> + Send;
    /// Bytes the data takes, and what was counted.
    fn footprint(&self) -> impl Future<Output = Result<(u64, String)>> + Send;

    /// Set a user's rating of a film, keeping the film's sum and count exact.
    fn rate(&self, rating: Rating) -> impl Future<Output = Result<()>> + Send;
    fn rate_batch(&self, ratings: Vec<Rating>) -> impl Future<Output = Result<()>> + Send;

    fn user_rating(
        &self,
        user: User,
        film: Film,
    ) -> impl Future<Output = Result<Option<u8>>> + Send;
    /// A film's (sum, count).
    fn film_rating(&self, film: Film) -> impl Future<Output = Result<(u64, u64)>> + Send;
    fn reviews_newest(&self, film: Film) -> impl Future<Output = Result<usize>> + Send;
    fn reviews_top(&self, film: Film) -> impl Future<Output = Result<usize>> + Send;
    fn bookmarks(&self, user: User) -> impl Future<Output = Result<usize>> + Send;
}

/// One measured phase: operations, failures and latency.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Measured {
    pub name: String,
    pub ops: u64,
    /// Rows the operations carried (batches carry many).
    pub rows: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub secs: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Measured {
    pub fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.secs.max(1e-9)
    }
    pub fn rows_per_sec(&self) -> f64 {
        self.rows as f64 / self.secs.max(1e-9)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LoadStep {
    pub what: String,
    pub rows: u64,
    pub secs: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StoreResult {
    pub store: String,
    pub version: String,
    pub schema: String,
    pub load: Vec<LoadStep>,
    pub footprint_bytes: u64,
    pub footprint_what: String,
    pub writes: Vec<Measured>,
    pub reads: Vec<Measured>,
    pub reads_with_writes: Vec<Measured>,
    /// The ratings written in the background during `reads_with_writes`.
    pub background: Measured,
    /// A check that every store answers the same: (sum, count) of the most popular film.
    pub top_film_totals: (u64, u64),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StudyResult {
    pub scale: Scale,
    pub clients: usize,
    pub warmup_secs: u64,
    pub duration_secs: u64,
    pub background_ratings_per_sec: u32,
    pub cores: usize,
    pub stores: Vec<StoreResult>,
}

type Op = Arc<dyn Fn(&mut Dice) -> Pin<Box<dyn Future<Output = Result<u64>> + Send>> + Send + Sync>;

/// `clients` loops, each running `op` back to back; latency recorded after the warm-up. An op
/// returns the rows it carried.
async fn closed_loop(
    name: &str,
    clients: usize,
    warmup: Duration,
    duration: Duration,
    op: Op,
) -> Measured {
    let start = Instant::now();
    let measure_from = start + warmup;
    let until = measure_from + duration;
    let mut tasks = Vec::with_capacity(clients);
    for client in 0..clients {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut dice = Dice::new(0xc11e47 + client as u64);
            let mut histogram =
                Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).expect("valid bounds");
            let (mut ops, mut rows, mut errors, mut first_error) = (0u64, 0u64, 0u64, None);
            loop {
                let began = Instant::now();
                if began >= until {
                    break;
                }
                let outcome = op(&mut dice).await;
                if began < measure_from {
                    continue;
                }
                match outcome {
                    Ok(carried) => {
                        ops += 1;
                        rows += carried;
                        histogram.saturating_record(began.elapsed().as_micros() as u64);
                    }
                    Err(error) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| format!("{error:#}"));
                        // A failing store answers fast; do not let it spin the CPU others need.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            (histogram, ops, rows, errors, first_error)
        }));
    }
    let mut total = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).expect("valid bounds");
    let mut measured = Measured {
        name: name.to_owned(),
        ..Measured::default()
    };
    for task in tasks {
        let (histogram, ops, rows, errors, first_error) = task.await.expect("client task");
        total.add(&histogram).expect("same bounds");
        measured.ops += ops;
        measured.rows += rows;
        measured.errors += errors;
        if measured.first_error.is_none() {
            measured.first_error = first_error;
        }
    }
    measured.secs = duration.as_secs_f64();
    if !total.is_empty() {
        measured.p50_ms = total.value_at_quantile(0.5) as f64 / 1000.0;
        measured.p99_ms = total.value_at_quantile(0.99) as f64 / 1000.0;
        measured.max_ms = total.max() as f64 / 1000.0;
    }
    measured
}

/// A rating someone gives now: any user, a film drawn by popularity.
fn fresh_rating(spread: &Spread, users: u64, dice: &mut Dice) -> Rating {
    let film = spread.draw_film(dice);
    Rating {
        user: data::user_id(dice.below(users)),
        film,
        score: data::score_for(film, dice),
        at_ms: 1_790_000_000_000 + dice.below(1_000_000) as i64,
    }
}

struct Spreads {
    ratings: Spread,
    reviews: Spread,
    bookmarks: Spread,
}

fn note(message: &str) {
    eprintln!("ugc-storage: {message}");
}

async fn load_store<S: Store>(
    store: &S,
    scale: &Scale,
    spreads: &Spreads,
) -> Result<Vec<LoadStep>> {
    store.reset().await.context("creating the schema")?;
    let mut steps = Vec::new();
    macro_rules! step {
        ($what:expr, $rows:expr, $body:expr) => {{
            let began = Instant::now();
            let rows: u64 = $rows;
            note(&format!("{}: loading {} {}", store.name(), rows, $what));
            $body;
            steps.push(LoadStep {
                what: $what.to_owned(),
                rows,
                secs: began.elapsed().as_secs_f64(),
            });
        }};
    }
    let _ = scale;
    step!("ratings", spreads.ratings.rows(), {
        // One chunk generated while the previous one is written.
        let mut pending: Option<tokio::task::JoinHandle<Result<()>>> = None;
        for chunk in data::ratings(&spreads.ratings, LOAD_CHUNK) {
            if let Some(task) = pending.take() {
                task.await??;
            }
            let store = store.clone();
            pending = Some(tokio::spawn(async move { store.load_ratings(chunk).await }));
        }
        if let Some(task) = pending {
            task.await??;
        }
    });
    step!("film totals", u64::from(scale.films), {
        let totals = data::rating_totals(&spreads.ratings);
        for chunk in totals
            .iter()
            .enumerate()
            .map(|(film, &(sum, count))| (film as Film, sum, count))
            .collect::<Vec<_>>()
            .chunks(LOAD_CHUNK)
        {
            store.load_totals(chunk.to_vec()).await?;
        }
    });
    step!("reviews", spreads.reviews.rows(), {
        for chunk in data::reviews(&spreads.reviews, LOAD_CHUNK / 4) {
            store.load_reviews(chunk).await?;
        }
    });
    step!("bookmarks", spreads.bookmarks.rows(), {
        for chunk in data::bookmarks(&spreads.bookmarks, LOAD_CHUNK) {
            store.load_bookmarks(chunk).await?;
        }
    });
    step!("indexes and merges", 0, store.finish_load().await?);
    Ok(steps)
}

/// The API's reads, each as an op over keys drawn by popularity.
fn read_ops<S: Store>(store: &S, spreads: &Arc<Spreads>, users: u64) -> Vec<(&'static str, Op)> {
    let mut ops: Vec<(&'static str, Op)> = Vec::new();
    {
        let (store, spreads) = (store.clone(), spreads.clone());
        ops.push((
            "a user's rating of a film",
            Arc::new(move |dice: &mut Dice| {
                let (user, film) = spreads.ratings.draw_pair(dice);
                let store = store.clone();
                Box::pin(async move {
                    match store.user_rating(user, film).await? {
                        Some(_) => Ok(1),
                        None => bail!("no rating of film {film} by {user}, though it was loaded"),
                    }
                })
            }),
        ));
    }
    {
        let (store, spreads) = (store.clone(), spreads.clone());
        ops.push((
            "a film's average and count",
            Arc::new(move |dice: &mut Dice| {
                let film = spreads.ratings.draw_film(dice);
                let store = store.clone();
                Box::pin(async move { store.film_rating(film).await.map(|_| 1) })
            }),
        ));
    }
    {
        let (store, spreads) = (store.clone(), spreads.clone());
        ops.push((
            "a film's reviews, newest first",
            Arc::new(move |dice: &mut Dice| {
                let film = spreads.reviews.draw_film(dice);
                let store = store.clone();
                Box::pin(async move { store.reviews_newest(film).await.map(|n| n as u64) })
            }),
        ));
    }
    {
        let (store, spreads) = (store.clone(), spreads.clone());
        ops.push((
            "a film's reviews, most liked first",
            Arc::new(move |dice: &mut Dice| {
                let film = spreads.reviews.draw_film(dice);
                let store = store.clone();
                Box::pin(async move { store.reviews_top(film).await.map(|n| n as u64) })
            }),
        ));
    }
    {
        let store = store.clone();
        ops.push((
            "a user's bookmarks",
            Arc::new(move |dice: &mut Dice| {
                let user = data::user_id(dice.below(users));
                let store = store.clone();
                Box::pin(async move { store.bookmarks(user).await.map(|n| n as u64) })
            }),
        ));
    }
    ops
}

/// Ratings at a fixed rate in batches of BATCH, whatever the store's speed: a batch that is not
/// done when the next is due runs beside it, up to a bound, past which batches are counted as
/// not sent (so memory stays flat and a slow store shows as "behind").
async fn background_writes<S: Store>(
    store: S,
    spreads: Arc<Spreads>,
    users: u64,
    per_sec: u32,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Measured {
    let batches_per_sec = (f64::from(per_sec) / BATCH as f64).max(0.1);
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / batches_per_sec));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let in_flight = Arc::new(tokio::sync::Semaphore::new(8));
    let results = Arc::new(std::sync::Mutex::new((
        Histogram::<u64>::new_with_bounds(1, 120_000_000, 3).expect("valid bounds"),
        0u64,
        0u64,
        None::<String>,
    )));
    let began = Instant::now();
    let mut dice = Dice::new(0xbac6);
    let mut skipped = 0u64;
    let mut tasks = tokio::task::JoinSet::new();
    while !*stop.borrow() {
        ticker.tick().await;
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            skipped += 1;
            continue;
        };
        let batch: Vec<Rating> = (0..BATCH)
            .map(|_| fresh_rating(&spreads.ratings, users, &mut dice))
            .collect();
        let (store, results) = (store.clone(), results.clone());
        tasks.spawn(async move {
            let sent = Instant::now();
            let outcome = store.rate_batch(batch).await;
            let mut results = results.lock().expect("not poisoned");
            match outcome {
                Ok(()) => {
                    results
                        .0
                        .saturating_record(sent.elapsed().as_micros() as u64);
                    results.1 += 1;
                }
                Err(error) => {
                    results.2 += 1;
                    results.3.get_or_insert_with(|| format!("{error:#}"));
                }
            }
            drop(permit);
        });
    }
    while tasks.join_next().await.is_some() {}
    let secs = began.elapsed().as_secs_f64();
    let results = results.lock().expect("not poisoned");
    let mut measured = Measured {
        name: "background ratings".into(),
        ops: results.1,
        rows: results.1 * BATCH as u64,
        errors: results.2 + skipped,
        first_error: results.3.clone().or_else(|| {
            (skipped > 0).then(|| format!("{skipped} batches not sent: 8 already in flight"))
        }),
        secs,
        ..Measured::default()
    };
    if !results.0.is_empty() {
        measured.p50_ms = results.0.value_at_quantile(0.5) as f64 / 1000.0;
        measured.p99_ms = results.0.value_at_quantile(0.99) as f64 / 1000.0;
        measured.max_ms = results.0.max() as f64 / 1000.0;
    }
    measured
}

async fn study_store<S: Store>(
    store: S,
    args: &StudyArgs,
    scale: &Scale,
    spreads: &Arc<Spreads>,
) -> Result<StoreResult> {
    let version = store
        .version()
        .await
        .with_context(|| format!("is {} up?", store.name()))?;
    note(&format!("{} {version}", store.name()));
    let load = if args.reuse_data {
        Vec::new()
    } else {
        load_store(&store, scale, spreads).await?
    };
    let (footprint_bytes, footprint_what) = store.footprint().await?;
    let top_film_totals = store.film_rating(0).await?;
    let warmup = Duration::from_secs(args.warmup_secs);
    let duration = Duration::from_secs(args.duration_secs);
    let users = scale.users;

    let mut writes = Vec::new();
    {
        note(&format!("{}: single ratings", store.name()));
        let (s, sp) = (store.clone(), spreads.clone());
        let op: Op = Arc::new(move |dice: &mut Dice| {
            let rating = fresh_rating(&sp.ratings, users, dice);
            let s = s.clone();
            Box::pin(async move { s.rate(rating).await.map(|()| 1) })
        });
        writes.push(closed_loop("ratings one by one", args.clients, warmup, duration, op).await);
    }
    {
        note(&format!("{}: batched ratings", store.name()));
        let (s, sp) = (store.clone(), spreads.clone());
        let op: Op = Arc::new(move |dice: &mut Dice| {
            let batch: Vec<Rating> = (0..BATCH)
                .map(|_| fresh_rating(&sp.ratings, users, dice))
                .collect();
            let s = s.clone();
            Box::pin(async move { s.rate_batch(batch).await.map(|()| BATCH as u64) })
        });
        // Fewer clients: each carries a hundred ratings.
        writes.push(
            closed_loop(
                "ratings in batches of 100",
                (args.clients / 4).max(1),
                warmup,
                duration,
                op,
            )
            .await,
        );
    }
    // Let merges and checkpoints the writes started settle before the reads.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut reads = Vec::new();
    for (name, op) in read_ops(&store, spreads, users) {
        note(&format!("{}: {name}", store.name()));
        reads.push(closed_loop(name, args.clients, warmup, duration, op).await);
    }

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let writer = tokio::spawn(background_writes(
        store.clone(),
        spreads.clone(),
        users,
        args.background_ratings_per_sec,
        stop_rx,
    ));
    let mut reads_with_writes = Vec::new();
    for (name, op) in read_ops(&store, spreads, users) {
        note(&format!("{}: {name}, with ratings arriving", store.name()));
        reads_with_writes.push(closed_loop(name, args.clients, warmup, duration, op).await);
    }
    stop_tx.send(true).ok();
    let background = writer.await.context("background writer")?;

    Ok(StoreResult {
        store: store.name().to_owned(),
        version,
        schema: store.schema().to_owned(),
        load,
        footprint_bytes,
        footprint_what,
        writes,
        reads,
        reads_with_writes,
        background,
        top_film_totals,
    })
}

pub async fn study(args: StudyArgs) -> Result<StudyResult> {
    let scale = Scale::times(args.scale);
    let spreads = Arc::new(Spreads {
        ratings: Spread::new(&scale, scale.ratings, 1),
        reviews: Spread::new(&scale, scale.reviews, 2),
        bookmarks: Spread::new(&scale, scale.bookmarks, 3),
    });
    note(&format!(
        "{} ratings, {} reviews, {} bookmarks over {} films and {} users",
        spreads.ratings.rows(),
        spreads.reviews.rows(),
        spreads.bookmarks.rows(),
        scale.films,
        scale.users
    ));
    let mut stores = Vec::new();
    for name in &args.stores {
        let need = |value: &Option<String>, flag: &str| {
            value
                .clone()
                .with_context(|| format!("--stores has {name}: give --{flag}"))
        };
        let result = match name.as_str() {
            "postgres" => {
                let store = postgres::Postgres::connect(
                    &need(&args.postgres_url, "postgres-url")?,
                    args.clients + 8,
                )
                .await?;
                study_store(store, &args, &scale, &spreads).await
            }
            "clickhouse" => {
                let store =
                    clickhouse::ClickHouse::new(&need(&args.clickhouse_url, "clickhouse-url")?)?;
                study_store(store, &args, &scale, &spreads).await
            }
            "redis" => {
                let store =
                    redis_store::RedisStore::connect(&need(&args.redis_url, "redis-url")?).await?;
                study_store(store, &args, &scale, &spreads).await
            }
            "tarantool" => {
                let store = tarantool::Tarantool::connect(
                    &need(&args.tarantool_addr, "tarantool-addr")?,
                    &args.tarantool_user,
                    &args.tarantool_password,
                    args.clients + 8,
                )
                .await?;
                study_store(store, &args, &scale, &spreads).await
            }
            other => bail!("unknown store {other}: postgres, clickhouse, redis or tarantool"),
        };
        stores.push(result.with_context(|| format!("studying {name}"))?);
    }
    Ok(StudyResult {
        scale,
        clients: args.clients,
        warmup_secs: args.warmup_secs,
        duration_secs: args.duration_secs,
        background_ratings_per_sec: args.background_ratings_per_sec,
        cores: std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(1),
        stores,
    })
}
