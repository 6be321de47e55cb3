//! `agora scenario`: request paths and users for agora-bench, drawn from real rows.

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
    mix: agora_social::scenario::PrefixMix,
}

pub async fn run(command: ScenarioCommand) -> anyhow::Result<()> {
    let (args, paths) = match command {
        ScenarioCommand::Feed(args) => return write_feed_scenario(args).await,
        ScenarioCommand::Dialogs(args) => return write_dialogs_scenario(args).await,
        ScenarioCommand::Shop(args) => {
            let pool = db::connect_batch_pool(&args.database, "agora-scenario")?;
            let tokens = agora_social::scenario::shoppers(&pool, args.users, args.seed).await?;
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
            let paths = agora_social::scenario::smoke_paths(&pool, args.count, args.seed).await?;
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

async fn write_dialogs_scenario(args: DialogsScenarioArgs) -> anyhow::Result<()> {
    let pool = db::connect_batch_pool(&args.database, "agora-scenario")?;
    let scenario =
        agora_social::scenario::dialogs_scenario(&pool, args.users, args.dialogs, args.seed)
            .await?;
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
