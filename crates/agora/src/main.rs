//! `agora`: one binary for every agora role. This file only parses the command line and
//! dispatches; each command lives in a module of its own.

mod feed;
mod migrate;
mod scenario;
mod seed;

use agora_platform::config::TelemetryConfig;
use agora_platform::http;
use agora_social::SocialConfig;
use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::feed::FeedCommand;
use crate::migrate::MigrateArgs;
use crate::scenario::ScenarioCommand;
use crate::seed::SeedCommand;

/// mimalloc instead of glibc's malloc: a feed read allocates and frees many small buffers, and
/// glibc spent about a quarter of the server's CPU on them (perf, docs/benchmarks/feed.md); it
/// also returns freed memory to the system instead of keeping it in arenas.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
        Command::Migrate(args) => migrate::run(args).await,
        Command::Seed(command) => seed::run(command).await,
        Command::Worker(config) => {
            agora_social::feed::worker::run(config, http::shutdown_signal()).await
        }
        Command::Feed(command) => feed::run(command).await,
        Command::Scenario(command) => scenario::run(command).await,
    }
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
