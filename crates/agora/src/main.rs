//! `agora`: one binary for every agora role. This file only parses the command line and
//! dispatches; each command lives in a module of its own.

mod dialogs;
mod feed;
mod migrate;
mod scenario;
mod seed;
mod serve;

use agora_platform::config::TelemetryConfig;
use agora_platform::http;
use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::dialogs::DialogsCommand;
use crate::feed::FeedCommand;
use crate::migrate::MigrateArgs;
use crate::scenario::ScenarioCommand;
use crate::seed::SeedCommand;
use crate::serve::ServeArgs;

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

// Parsed once at startup: the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP APIs of the services asked for (contract: crates/social/api/otus-openapi.json).
    Serve(ServeArgs),
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
    /// Dialogs maintenance: resharding and unread-counter repair.
    #[command(subcommand)]
    Dialogs(DialogsCommand),
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
        Command::Serve(args) => serve::run(args).await,
        Command::Migrate(args) => migrate::run(args).await,
        Command::Seed(command) => seed::run(command).await,
        Command::Worker(config) => {
            agora_social::feed::worker::run(config, http::shutdown_signal()).await
        }
        Command::Feed(command) => feed::run(command).await,
        Command::Dialogs(command) => dialogs::run(command).await,
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

    #[test]
    fn serve_runs_the_services_asked_for_and_refuses_unknown_ones() {
        use clap::Parser;
        let parse = |args: &[&str]| super::Cli::try_parse_from(args);
        let Ok(super::Cli {
            command: super::Command::Serve(args),
            ..
        }) = parse(&["agora", "serve"])
        else {
            panic!("`agora serve` parses");
        };
        assert_eq!(
            args.services,
            [
                crate::serve::ServiceName::Social,
                crate::serve::ServiceName::Dialogs,
                crate::serve::ServiceName::Ugc,
                crate::serve::ServiceName::Web
            ]
        );
        let error = parse(&["agora", "serve", "--services", "social,nonsense"])
            .err()
            .expect("an unknown service is refused");
        assert!(error.to_string().contains("nonsense"), "{error}");
    }
}
