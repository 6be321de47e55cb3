//! `agora scenario`: request paths and users for agora-bench, drawn from real rows.

mod data;

use agora_platform::config::DatabaseConfig;
use agora_platform::db;
use anyhow::Context;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum ScenarioCommand {
    /// Name-prefix searches built from real users' names.
    Search(SearchScenarioArgs),
    /// Profile reads, searches and post reads of real rows, interleaved.
    Smoke(ScenarioArgs),
    /// The feed benchmark's users: feed readers, authors with a follower, the top celebrity and
    /// live-socket users, each with a fresh session token. Writes reads.txt, pairs.txt,
    /// celebrity.txt, live-sockets.txt and live-authors.txt into --out-dir.
    Feed(FeedScenarioArgs),
    /// The dialogs benchmark's requests: sends both ways and first-page reads of random
    /// dialogs between sampled users, each with a fresh session token. Writes sends.txt and
    /// lists.txt into --out-dir.
    Dialogs(DialogsScenarioArgs),
    /// The shop benchmark's shoppers: sampled users, each with a fresh session token, one
    /// token per line of --out.
    Shop(ShopScenarioArgs),
    /// The UGC benchmark's requests: sampled users (a fresh session each) rating, bookmarking
    /// and reviewing films chosen by popularity (1/rank), and reading ratings, review pages and
    /// bookmarks. Writes rate.txt, bookmark.txt, review.txt, film-rating.txt,
    /// reviews-newest.txt, reviews-top.txt and bookmarks.txt into --out-dir.
    Ugc(UgcScenarioArgs),
    /// The web front end benchmark's users: readers who follow the same authors, whose posts
    /// fill each reader's feed, each reader with a fresh session token. Writes home.txt (the
    /// home page), user.txt (an author's page) and api-feed.txt (the same 20 posts through the
    /// API) into --out-dir, one "path token" per line.
    Web(WebScenarioArgs),
}

#[derive(clap::Args)]
pub struct WebScenarioArgs {
    #[command(flatten)]
    database: DatabaseConfig,
    #[arg(long, default_value_t = 500)]
    readers: usize,
    #[arg(long, default_value_t = 20)]
    authors: usize,
    /// Posts per author: authors × posts is each reader's feed (the cache holds 1000).
    #[arg(long, default_value_t = 60)]
    posts_per_author: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long)]
    out_dir: std::path::PathBuf,
}

#[derive(clap::Args)]
pub struct UgcScenarioArgs {
    #[command(flatten)]
    database: DatabaseConfig,
    #[arg(long, default_value_t = 2000)]
    users: usize,
    /// Films in the catalog; their popularity falls as 1/rank.
    #[arg(long, default_value_t = 10_000)]
    films: usize,
    /// Requests per file.
    #[arg(long, default_value_t = 20_000)]
    requests: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long)]
    out_dir: std::path::PathBuf,
}

#[derive(clap::Args)]
pub struct ShopScenarioArgs {
    #[command(flatten)]
    database: DatabaseConfig,
    #[arg(long, default_value_t = 200)]
    users: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long)]
    out: std::path::PathBuf,
}

#[derive(clap::Args)]
pub struct DialogsScenarioArgs {
    #[command(flatten)]
    database: DatabaseConfig,
    #[arg(long, default_value_t = 2000)]
    users: usize,
    #[arg(long, default_value_t = 5000)]
    dialogs: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long)]
    out_dir: std::path::PathBuf,
}

#[derive(clap::Args)]
pub struct FeedScenarioArgs {
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
pub struct ScenarioArgs {
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
pub struct SearchScenarioArgs {
    #[command(flatten)]
    common: ScenarioArgs,
    /// Prefix lengths and their weights, LENGTH=WEIGHT,...
    #[arg(long, default_value = "2=30,3=40,4=30")]
    mix: data::PrefixMix,
}

pub async fn run(command: ScenarioCommand) -> anyhow::Result<()> {
    let (args, paths) = match command {
        ScenarioCommand::Feed(args) => return write_feed_scenario(args).await,
        ScenarioCommand::Dialogs(args) => return write_dialogs_scenario(args).await,
        ScenarioCommand::Ugc(args) => return write_ugc_scenario(args).await,
        ScenarioCommand::Web(args) => return write_web_scenario(args).await,
        ScenarioCommand::Shop(args) => {
            let pool = db::connect_batch_pool(&args.database, "agora-scenario")?;
            let tokens = data::shoppers(&pool, args.users, args.seed).await?;
            let dir = args.out.parent().unwrap_or(std::path::Path::new("."));
            let name = args
                .out
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("shoppers.txt");
            return write_lines(dir, [(name, tokens)]);
        }
        ScenarioCommand::Search(args) => {
            let pool = db::connect_batch_pool(&args.common.database, "agora-scenario")?;
            let paths =
                data::search_paths(&pool, args.common.count, &args.mix, args.common.seed).await?;
            println!("scenario: prefix mix {}", args.mix);
            (args.common, paths)
        }
        ScenarioCommand::Smoke(args) => {
            let pool = db::connect_batch_pool(&args.database, "agora-scenario")?;
            let paths = data::smoke_paths(&pool, args.count, args.seed).await?;
            (args, paths)
        }
    };
    let mut text = paths.join("\n");
    text.push('\n');
    std::fs::write(&args.out, text).with_context(|| format!("writing {}", args.out.display()))?;
    println!(
        "scenario: wrote {} paths to {}",
        paths.len(),
        args.out.display()
    );
    Ok(())
}

async fn write_web_scenario(args: WebScenarioArgs) -> anyhow::Result<()> {
    let pool = db::connect_batch_pool(&args.database, "agora-scenario")?;
    let scenario = data::web_scenario(
        &pool,
        args.readers,
        args.authors,
        args.posts_per_author,
        args.seed,
    )
    .await?;
    let lines = |path: &dyn Fn(i64) -> String| -> Vec<String> {
        scenario
            .readers
            .iter()
            .map(|(token, author)| format!("{} {token}", path(*author)))
            .collect()
    };
    write_lines(
        &args.out_dir,
        [
            ("home.txt", lines(&|_| "/".to_owned())),
            ("user.txt", lines(&|author| format!("/people/{author}"))),
            (
                "api-feed.txt",
                lines(&|_| "/post/feed?offset=0&limit=20".to_owned()),
            ),
        ],
    )
}

async fn write_dialogs_scenario(args: DialogsScenarioArgs) -> anyhow::Result<()> {
    let pool = db::connect_batch_pool(&args.database, "agora-scenario")?;
    let scenario = data::dialogs_scenario(&pool, args.users, args.dialogs, args.seed).await?;
    write_lines(
        &args.out_dir,
        [("sends.txt", scenario.sends), ("lists.txt", scenario.lists)],
    )
}

fn write_lines<const N: usize>(
    dir: &std::path::Path,
    files: [(&str, Vec<String>); N],
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (name, lines) in files {
        let path = dir.join(name);
        let mut text = lines.join("\n");
        text.push('\n');
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        println!("scenario: {} lines in {}", lines.len(), path.display());
    }
    Ok(())
}

/// splitmix64: reproducible draws; the scenario needs spread, not secrecy.
struct Draws(u64);

impl Draws {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next()) * n.max(1) as u128) >> 64) as usize
    }
}

async fn write_ugc_scenario(args: UgcScenarioArgs) -> anyhow::Result<()> {
    let pool = db::connect_batch_pool(&args.database, "agora-scenario")?;
    let users = data::users_with_sessions(&pool, args.users, args.seed).await?;
    let films = args.films.max(1);
    // Cumulative 1/rank weights: a film is drawn in proportion to its popularity.
    let mut cumulative = Vec::with_capacity(films);
    let mut total = 0.0;
    for rank in 1..=films {
        total += 1.0 / rank as f64;
        cumulative.push(total);
    }
    let film_id = |index: usize| format!("00000000-0000-4000-8000-{index:012x}");
    let mut draws = Draws(args.seed ^ 0x0c0ffee);
    let draw_film = |draws: &mut Draws| {
        let at = (draws.next() >> 11) as f64 / (1u64 << 53) as f64 * total;
        film_id(cumulative.partition_point(|&c| c <= at).min(films - 1))
    };
    let words = [
        "a",
        "slow",
        "start",
        "brilliant",
        "ending",
        "the",
        "cast",
        "again",
        "worth",
        "it",
    ];
    let (mut rate, mut bookmark, mut review) = (Vec::new(), Vec::new(), Vec::new());
    let (mut film_rating, mut newest, mut top, mut bookmarks) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..args.requests {
        let (id, token) = &users[draws.below(users.len())];
        let film = draw_film(&mut draws);
        let score = draws.below(11);
        rate.push(format!(
            "PUT /ugc/films/{film}/rating {token} {{\"score\":{score}}}"
        ));
        bookmark.push(format!(
            "PUT /ugc/bookmarks/{} {token} {{}}",
            draw_film(&mut draws)
        ));
        let text: Vec<&str> = (0..8 + draws.below(40))
            .map(|_| words[draws.below(words.len())])
            .collect();
        review.push(format!(
            "PUT /ugc/films/{film}/reviews/{id} {token} {{\"text\":\"{}\",\"score\":{score}}}",
            text.join(" ")
        ));
        film_rating.push(format!(
            "/ugc/films/{}/rating {token}",
            draw_film(&mut draws)
        ));
        newest.push(format!(
            "/ugc/films/{}/reviews?sort=newest {token}",
            draw_film(&mut draws)
        ));
        top.push(format!(
            "/ugc/films/{}/reviews?sort=top {token}",
            draw_film(&mut draws)
        ));
        bookmarks.push(format!("/ugc/bookmarks {token}"));
    }
    write_lines(
        &args.out_dir,
        [
            ("rate.txt", rate),
            ("bookmark.txt", bookmark),
            ("review.txt", review),
            ("film-rating.txt", film_rating),
            ("reviews-newest.txt", newest),
            ("reviews-top.txt", top),
            ("bookmarks.txt", bookmarks),
        ],
    )
}

async fn write_feed_scenario(args: FeedScenarioArgs) -> anyhow::Result<()> {
    let pool = db::connect_batch_pool(&args.database, "agora-scenario")?;
    let options = data::FeedScenarioOptions {
        readers: args.readers,
        pairs: args.pairs,
        live_sockets: args.live_sockets,
        live_authors: args.live_authors,
        celebrity_followers: args.celebrity_followers,
        celebrity_min_followers: args.celebrity_min_followers,
        seed: args.seed,
    };
    let scenario = data::feed_scenario(&pool, &options).await?;
    write_lines(
        &args.out_dir,
        [
            ("reads.txt", scenario.reads),
            ("pairs.txt", scenario.pairs),
            ("celebrity.txt", scenario.celebrity.into_iter().collect()),
            ("live-sockets.txt", scenario.live_sockets),
            ("live-authors.txt", scenario.live_authors),
        ],
    )
}
