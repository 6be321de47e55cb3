//! `agora serve`: runs the services asked for in one process, on one listener.

use agora_dialogs::DialogsConfig;
use agora_platform::config::HttpConfig;
use agora_platform::http;
use agora_platform::settings::PlatformSettings;
use agora_shop::ShopConfig;
use agora_social::SocialConfig;
use agora_ugc::UgcConfig;
use agora_web::WebConfig;
use clap::{Args, ValueEnum};

/// A service the binary can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ServiceName {
    /// The social network: users, friends, posts, feeds, the live feed.
    Social,
    /// Private dialogs, sharded over PostgreSQL servers (docs/dialogs.md).
    Dialogs,
    /// The shop: catalog, carts, orders, customers, behind pgpool-II (docs/shop.md). Not run
    /// by default: it needs its own database.
    Shop,
    /// UGC of a film site: ratings, reviews with votes, bookmarks (docs/ugc.md), in a database
    /// of its own on the main server (`agora migrate` creates it).
    Ugc,
    /// The web front end: pages for people at `/` (docs/ui.md). Needs social in the same
    /// process; shows dialogs when dialogs runs here too.
    Web,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Services this process runs, comma-separated; social, dialogs, UGC and web by default (the shop needs a database of its own).
    #[arg(long = "services", env = "AGORA_SERVICES", value_enum, value_delimiter = ',',
          default_values_t = [ServiceName::Social, ServiceName::Dialogs, ServiceName::Ugc, ServiceName::Web])]
    pub services: Vec<ServiceName>,

    /// What every service shares: the main database, Redis, the namespace, sessions.
    #[command(flatten)]
    pub platform: PlatformSettings,

    /// The HTTP server all the services of this process answer on.
    #[command(flatten)]
    pub http: HttpConfig,

    #[command(flatten)]
    pub social: SocialConfig,

    #[command(flatten)]
    pub dialogs: DialogsConfig,

    #[command(flatten)]
    pub shop: ShopConfig,

    #[command(flatten)]
    pub ugc: UgcConfig,

    #[command(flatten)]
    pub web: WebConfig,

    /// Where a dialogs process runs, for a process that does not run dialogs itself: it then
    /// forwards `/dialog/*` and `/dialogs` there, with the request id, so clients of the
    /// social API keep one address.
    #[arg(long = "dialogs-url", env = "AGORA_DIALOGS_URL")]
    pub dialogs_url: Option<String>,
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let listener = http::bind(&args.http).await?;
    tracing::info!(address = %listener.local_addr()?, services = ?args.services, "agora listening");
    let mut services = Vec::new();
    let names = dedup(&args.services);
    if !names.contains(&ServiceName::Dialogs)
        && let Some(url) = &args.dialogs_url
    {
        let forward = agora_platform::forward::router(
            &agora_dialogs::http::PATHS,
            url,
            "dialogs",
            std::time::Duration::from_secs(10),
        )?;
        services.push(agora_platform::service::Service::new(
            "dialogs (forwarded)",
            forward,
            agora_platform::http::OpsEndpoints::default(),
        ));
    }
    anyhow::ensure!(
        !names.contains(&ServiceName::Web) || names.contains(&ServiceName::Social),
        "the web front end needs the social network in the same process: add social to --services"
    );
    // One social network and one dialogs per process: the web pages use the same ones.
    let social = names
        .contains(&ServiceName::Social)
        .then(|| agora_social::rules::Social::connect(&args.platform, &args.social))
        .transpose()?;
    let dialogs = if names.contains(&ServiceName::Dialogs) {
        Some(agora_dialogs::connect(&args.dialogs, &args.platform).await?)
    } else {
        None
    };
    for name in names {
        services.push(match name {
            ServiceName::Social => agora_social::http::service_of(
                social.clone().expect("connected above"),
                &args.platform,
                &args.social,
            )?,
            ServiceName::Dialogs => {
                agora_dialogs::http::service_of(dialogs.clone().expect("connected above"))
            }
            ServiceName::Shop => agora_shop::service(&args.shop, &args.platform)?,
            ServiceName::Ugc => agora_ugc::service(&args.ugc, &args.platform)?,
            ServiceName::Web => agora_web::service(agora_web::Web::new(
                social.clone().expect("checked above"),
                dialogs.clone(),
                &args.web,
                args.social.token_ttl(),
            )),
        });
    }
    agora_platform::service::run(services, listener, &args.http, http::shutdown_signal()).await
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
