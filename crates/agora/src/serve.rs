//! `agora serve`: runs the services asked for in one process, on one listener.

use agora_platform::http;
use agora_social::SocialConfig;
use clap::{Args, ValueEnum};

/// A service the binary can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ServiceName {
    /// The social network: users, friends, posts, feeds, the live feed.
    Social,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Services this process runs, comma-separated; all of them by default.
    #[arg(long = "services", env = "AGORA_SERVICES", value_enum, value_delimiter = ',',
          default_values_t = [ServiceName::Social])]
    pub services: Vec<ServiceName>,

    #[command(flatten)]
    pub social: SocialConfig,
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let listener = http::bind(&args.social.http).await?;
    tracing::info!(address = %listener.local_addr()?, services = ?args.services, "agora listening");
    let mut services = Vec::new();
    for name in dedup(&args.services) {
        services.push(match name {
            ServiceName::Social => agora_social::http::service(&args.social)?,
        });
    }
    agora_platform::service::run(
        services,
        listener,
        &args.social.http,
        http::shutdown_signal(),
    )
    .await
}

fn dedup(names: &[ServiceName]) -> Vec<ServiceName> {
    let mut unique = Vec::new();
    for name in names {
        if !unique.contains(name) {
            unique.push(*name);
        }
    }
    unique
}
