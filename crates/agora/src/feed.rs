//! `agora feed`: maintenance of the cached feeds.

use agora_platform::db;
use agora_platform::replicas::Database;
use agora_platform::settings::PlatformSettings;
use agora_social::SocialConfig;
use agora_social::rules::Social;
use clap::Subcommand;
use futures_util::StreamExt as _;

#[derive(Subcommand)]
pub enum FeedCommand {
    /// Rebuild cached feeds from PostgreSQL.
    Rebuild(RebuildArgs),
}

#[derive(clap::Args)]
#[group(id = "which", required = true, multiple = false)]
pub struct RebuildArgs {
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
    platform: PlatformSettings,
    #[command(flatten)]
    config: SocialConfig,
}

pub async fn run(command: FeedCommand) -> anyhow::Result<()> {
    match command {
        FeedCommand::Rebuild(args) => rebuild_feeds(args).await,
    }
}

async fn rebuild_feeds(args: RebuildArgs) -> anyhow::Result<()> {
    let pool = db::connect_batch_pool(&args.platform.database, "agora-feed-rebuild")?;
    let service = Social::new(Database::single(pool.clone()), &args.platform, &args.config)?;
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
