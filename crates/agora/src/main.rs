//! `agora`: one binary for every agora role. `serve` runs the social network API, `migrate`
//! applies schema migrations, `seed` loads data.

use agora_platform::config::{DatabaseConfig, TelemetryConfig};
use agora_platform::{db, http};
use agora_social::SocialConfig;
use agora_social::service::SocialService;
use anyhow::Context;
use clap::{Parser, Subcommand};

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
}

#[derive(clap::Args)]
struct MigrateArgs {
    #[command(flatten)]
    database: DatabaseConfig,
}

#[derive(Subcommand)]
enum SeedCommand {
    /// A dozen demo users with friends and posts; does nothing if users exist.
    Demo(SocialConfig),
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
        Command::Seed(SeedCommand::Demo(config)) => {
            let pool = db::connect_pool(&config.database, "agora-seed")?;
            let service = SocialService::new(pool, &config);
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
