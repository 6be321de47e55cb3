//! `agora seed`: demo data, or a million users for the studies.

use agora_platform::config::DatabaseConfig;
use agora_platform::db;
use agora_platform::replicas::Database;
use agora_platform::settings::PlatformSettings;
use agora_social::SocialConfig;
use agora_social::rules::Social;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum SeedCommand {
    /// A dozen demo users with friends and posts; does nothing if users exist.
    Demo(Box<DemoArgs>),
    /// A deterministic population (default a million users) with friendships and posts, loaded
    /// with binary COPY into an empty database. Every seeded user's password is `seed-password`.
    Users(SeedArgs),
}

#[derive(clap::Args)]
pub struct DemoArgs {
    #[command(flatten)]
    platform: PlatformSettings,
    #[command(flatten)]
    social: SocialConfig,
}

#[derive(clap::Args)]
pub struct SeedArgs {
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
pub struct Bars {
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

pub async fn run(command: SeedCommand) -> anyhow::Result<()> {
    match command {
        SeedCommand::Users(args) => {
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
        SeedCommand::Demo(args) => {
            let pool = db::connect_batch_pool(&args.platform.database, "agora-seed")?;
            let service = Social::new(Database::single(pool), &args.platform, &args.social)?;
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
