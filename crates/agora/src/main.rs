//! `agora`: one binary for every agora role. `serve` runs the social network API, `migrate`
//! applies schema migrations, `seed` loads data.

use agora_platform::config::{DatabaseConfig, TelemetryConfig};
use agora_platform::{db, http};
use agora_social::SocialConfig;
use agora_social::service::SocialService;
use anyhow::Context;
use clap::{Parser, Subcommand};

/// mimalloc instead of glibc's malloc: a feed read allocates and frees many small buffers, and
/// glibc spent about a quarter of the server's CPU on them (perf, docs/benchmarks/feed.md); it
/// also returns freed memory to the system instead of keeping it in arenas.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use futures_util::StreamExt as _;

#[derive(Parser)]
#[command(name = "agora", version, about = "agora: a highload social platform")]
struct Cli {
    #[command(flatten)]
    telemetry: TelemetryConfig,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the social network HTTP API (contract: shared/otus/openapi.json).
    Serve(SocialConfig),
    /// Apply pending database migrations and exit. Safe to run concurrently.
    Migrate(MigrateArgs),
    /// Load data into the database.
    #[command(subcommand)]
    Seed(SeedCommand),
    /// Run the feed worker: outbox relay, fan-out lanes (see docs/feed.md).
    Worker(agora_social::feed::worker::WorkerConfig),
    /// Feed maintenance.
    #[command(subcommand)]
    Feed(FeedCommand),
    /// Write request paths for agora-bench, drawn from the rows in the database.
    #[command(subcommand)]
    Scenario(ScenarioCommand),
}

#[derive(Subcommand)]
enum FeedCommand {
    /// Rebuild cached feeds from PostgreSQL.
    Rebuild(RebuildArgs),
}

#[derive(clap::Args)]
#[group(id = "which", required = true, multiple = false)]
struct RebuildArgs {
    /// The user whose feed to rebuild.
    #[arg(long, group = "which")]
    user: Option<i64>,
    /// Every follower of this author (warms an author's audience, e.g. for a benchmark).
    #[arg(long, group = "which")]
    followers_of: Option<i64>,
    /// Every user with at least one friend (a full feed takes 8 KB of Redis).
    #[arg(long, group = "which")]
    all: bool,
    #[command(flatten)]
    config: SocialConfig,
}

#[derive(Subcommand)]
enum ScenarioCommand {
    /// Name-prefix searches built from real users' names.
    Search(SearchScenarioArgs),
    /// Profile reads, searches and post reads of real rows, interleaved.
    Smoke(ScenarioArgs),
    /// The feed benchmark's users: feed readers, authors with a follower, the top celebrity and
    /// live-socket users, each with a fresh session token. Writes reads.txt, pairs.txt,
    /// celebrity.txt, live-sockets.txt and live-authors.txt into --out-dir.
    Feed(FeedScenarioArgs),
}

#[derive(clap::Args)]
struct FeedScenarioArgs {
    #[command(flatten)]
    database: DatabaseConfig,
    /// Feed readers (users with friends).
    #[arg(long, default_value_t = 2000)]
    readers: usize,
    /// Ordinary authors, each with one follower who watches for their posts.
    #[arg(long, default_value_t = 200)]
    pairs: usize,
    /// Users who hold a live socket; each is made to follow one of the live authors.
    #[arg(long, default_value_t = 0)]
    live_sockets: usize,
    #[arg(long, default_value_t = 10)]
    live_authors: usize,
    /// Authors with this many followers count as celebrities (not used as ordinary authors).
    #[arg(long, default_value_t = 10_000)]
    celebrity_followers: i64,
    /// Make the top celebrity followed by at least this many users (adds friendships).
    #[arg(long, default_value_t = 0)]
    celebrity_min_followers: i64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long)]
    out_dir: std::path::PathBuf,
}

#[derive(clap::Args)]
struct ScenarioArgs {
    #[command(flatten)]
    database: DatabaseConfig,
    /// Paths to write.
    #[arg(long, default_value_t = 1000)]
    count: usize,
    /// Random seed: the same seed and data give the same paths.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// File to write, one path per line.
    #[arg(long)]
    out: std::path::PathBuf,
}

#[derive(clap::Args)]
struct SearchScenarioArgs {
    #[command(flatten)]
    common: ScenarioArgs,
    /// Prefix lengths and their weights, LENGTH=WEIGHT,...
    #[arg(long, default_value = "2=30,3=40,4=30")]
    mix: agora_social::scenario::PrefixMix,
}

#[derive(clap::Args)]
struct MigrateArgs {
    #[command(flatten)]
    database: DatabaseConfig,
}

#[derive(Subcommand)]
enum SeedCommand {
    /// A dozen demo users with friends and posts; does nothing if users exist.
    Demo(Box<SocialConfig>),
    /// A deterministic population (default a million users) with friendships and posts, loaded
    /// with binary COPY into an empty database. Every seeded user's password is `seed-password`.
    Users(SeedArgs),
}

#[derive(clap::Args)]
struct SeedArgs {
    #[command(flatten)]
    database: DatabaseConfig,
    /// Users to generate.
    #[arg(long, default_value_t = 1_000_000)]
    users: u64,
    /// Random seed: the same seed gives the same population.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Mean number of ordinary friends per user.
    #[arg(long, default_value_t = 5.0)]
    friends_mean: f64,
    /// Celebrities: the first N users, followed by many.
    #[arg(long, default_value_t = 3)]
    celebrities: u64,
    /// Share of all users that follow the top celebrity (the k-th gets share/k).
    #[arg(long, default_value_t = 0.1)]
    celebrity_share: f64,
    /// Mean posts per user.
    #[arg(long, default_value_t = 1.0)]
    posts_mean: f64,
}

/// A progress bar per seeding stage, with rate and ETA.
struct Bars {
    bar: std::cell::RefCell<Option<indicatif::ProgressBar>>,
}

impl agora_social::seed::Progress for Bars {
    fn stage(&self, name: &str, total: u64) {
        let bar = indicatif::ProgressBar::new(total).with_style(
            indicatif::ProgressStyle::with_template(
                "{msg:>32} [{bar:30}] {human_pos}/{human_len} {per_sec} eta {eta} ({elapsed})",
            )
            .expect("static template")
            .progress_chars("=> "),
        );
        bar.set_message(name.to_owned());
        *self.bar.borrow_mut() = Some(bar);
    }

    fn advance(&self, done: u64) {
        if let Some(bar) = self.bar.borrow().as_ref() {
            bar.set_position(done);
        }
    }

    fn finish_stage(&self) {
        if let Some(bar) = self.bar.borrow_mut().take() {
            bar.finish();
            // A plain line too, so logs and CI output keep the timing the bar showed.
            println!(
                "seed: {} done in {:.1} s",
                bar.message(),
                bar.elapsed().as_secs_f64()
            );
        }
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    agora_platform::telemetry::init_tracing(&cli.telemetry)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run(cli.command))
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(config) => {
            let listener = http::bind(&config.http).await?;
            tracing::info!(address = %listener.local_addr()?, "social network API listening");
            agora_social::http::run(config, listener, http::shutdown_signal()).await
        }
        Command::Migrate(args) => {
            let applied =
                db::run_migrations(&args.database.url, agora_social::migrations()).await?;
            if applied.is_empty() {
                println!("migrations: schema is up to date");
            } else {
                for migration in applied {
                    println!("migrations: applied {migration}");
                }
            }
            Ok(())
        }
        Command::Seed(SeedCommand::Users(args)) => {
            let options = agora_social::seed::SeedOptions {
                users: args.users,
                seed: args.seed,
                friends_mean: args.friends_mean,
                celebrities: args.celebrities,
                celebrity_share: args.celebrity_share,
                posts_mean: args.posts_mean,
            };
            let started = std::time::Instant::now();
            let bars = Bars {
                bar: std::cell::RefCell::new(None),
            };
            let summary = agora_social::seed::seed(&args.database.url, &options, &bars).await?;
            println!(
                "seed: {} users, {} friendships, {} posts in {:.1} s; every password is {:?}; first user id {}",
                summary.users,
                summary.friendships,
                summary.posts,
                started.elapsed().as_secs_f64(),
                agora_social::seed::SEED_PASSWORD,
                summary.first_user_id
            );
            Ok(())
        }
        Command::Worker(config) => {
            agora_social::feed::worker::run(config, http::shutdown_signal()).await
        }
        Command::Feed(FeedCommand::Rebuild(args)) => rebuild_feeds(args).await,
        Command::Scenario(ScenarioCommand::Feed(args)) => write_feed_scenario(args).await,
        Command::Scenario(scenario) => {
            let (args, paths) = match scenario {
                ScenarioCommand::Feed(_) => unreachable!("handled above"),
                ScenarioCommand::Search(args) => {
                    let pool = db::connect_batch_pool(&args.common.database, "agora-scenario")?;
                    let paths = agora_social::scenario::search_paths(
                        &pool,
                        args.common.count,
                        &args.mix,
                        args.common.seed,
                    )
                    .await?;
                    println!("scenario: prefix mix {}", args.mix);
                    (args.common, paths)
                }
                ScenarioCommand::Smoke(args) => {
                    let pool = db::connect_batch_pool(&args.database, "agora-scenario")?;
                    let paths =
                        agora_social::scenario::smoke_paths(&pool, args.count, args.seed).await?;
                    (args, paths)
                }
            };
            let mut text = paths.join("\n");
            text.push('\n');
            std::fs::write(&args.out, text)
                .with_context(|| format!("writing {}", args.out.display()))?;
            println!(
                "scenario: wrote {} paths to {}",
                paths.len(),
                args.out.display()
            );
            Ok(())
        }
        Command::Seed(SeedCommand::Demo(config)) => {
            let pool = db::connect_batch_pool(&config.database, "agora-seed")?;
            let service = SocialService::new(pool, &config)?;
            let summary = agora_social::demo::load(&service)
                .await
                .map_err(|error| anyhow::anyhow!("loading demo data: {error}"))?;
            if summary.created {
                println!(
                    "demo: created {} users with friends and posts",
                    summary.users
                );
            } else {
                println!(
                    "demo: the database already has {} users; left as is",
                    summary.users
                );
            }
            println!(
                "demo: log in with {{\"id\": \"{}\", \"password\": \"{}\"}}",
                summary.first_user_id,
                agora_social::demo::DEMO_PASSWORD
            );
            Ok(())
        }
    }
}

async fn rebuild_feeds(args: RebuildArgs) -> anyhow::Result<()> {
    let pool = db::connect_batch_pool(&args.config.database, "agora-feed-rebuild")?;
    let service = SocialService::new(pool.clone(), &args.config)?;
    let rebuild = |user: i64| {
        let service = service.clone();
        async move {
            service
                .feed()
                .rebuild(user)
                .await
                .map_err(|error| anyhow::anyhow!("rebuilding the feed of {user}: {error}"))
        }
    };
    if let Some(user) = args.user {
        let feed = rebuild(user).await?;
        println!("feed: rebuilt user {user}: {} posts", feed.ids.len());
        return Ok(());
    }
    let db = pool.get().await?;
    // Users with friends, or the followers of one author: the same keyset walk either way.
    let total: i64 = match args.followers_of {
        Some(author) => {
            db.query_one(
                "SELECT count(*) FROM friendships WHERE friend_id = $1",
                &[&author],
            )
            .await?
        }
        None => {
            db.query_one("SELECT count(DISTINCT user_id) FROM friendships", &[])
                .await?
        }
    }
    .get(0);
    let bar = indicatif::ProgressBar::new(total as u64).with_style(
        indicatif::ProgressStyle::with_template(
            "rebuilding feeds [{bar:30}] {human_pos}/{human_len} {per_sec} eta {eta}",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    let started = std::time::Instant::now();
    let (mut after, mut posts) = (i64::MIN, 0usize);
    loop {
        let rows = match args.followers_of {
            Some(author) => {
                db.query(
                    "SELECT user_id FROM friendships WHERE friend_id = $2 AND user_id > $1 \
                     ORDER BY user_id LIMIT 1000",
                    &[&after, &author],
                )
                .await?
            }
            None => {
                db.query(
                    "SELECT DISTINCT user_id FROM friendships WHERE user_id > $1 \
                     ORDER BY user_id LIMIT 1000",
                    &[&after],
                )
                .await?
            }
        };
        let users: Vec<i64> = rows.iter().map(|row| row.get(0)).collect();
        let Some(&last) = users.last() else { break };
        after = last;
        // A few at a time: enough to overlap round trips without crowding the pool.
        let mut pending =
            futures_util::stream::iter(users.into_iter().map(rebuild)).buffer_unordered(8);
        while let Some(feed) = futures_util::StreamExt::next(&mut pending).await {
            posts += feed?.ids.len();
            bar.inc(1);
        }
    }
    bar.finish();
    println!(
        "feed: rebuilt {total} feeds ({posts} entries) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn write_feed_scenario(args: FeedScenarioArgs) -> anyhow::Result<()> {
    let pool = db::connect_batch_pool(&args.database, "agora-scenario")?;
    let options = agora_social::scenario::FeedScenarioOptions {
        readers: args.readers,
        pairs: args.pairs,
        live_sockets: args.live_sockets,
        live_authors: args.live_authors,
        celebrity_followers: args.celebrity_followers,
        celebrity_min_followers: args.celebrity_min_followers,
        seed: args.seed,
    };
    let scenario = agora_social::scenario::feed_scenario(&pool, &options).await?;
    std::fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("creating {}", args.out_dir.display()))?;
    let files = [
        ("reads.txt", scenario.reads),
        ("pairs.txt", scenario.pairs),
        ("celebrity.txt", scenario.celebrity.into_iter().collect()),
        ("live-sockets.txt", scenario.live_sockets),
        ("live-authors.txt", scenario.live_authors),
    ];
    for (name, lines) in files {
        let path = args.out_dir.join(name);
        let mut text = lines.join("\n");
        text.push('\n');
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        println!("scenario: {} lines in {}", lines.len(), path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        // Flattened configs must not reuse an argument id (clap only checks in debug builds,
        // at the first parse, so a clash would otherwise surface as a crash on start).
        super::Cli::command().debug_assert();
    }
}
