//! agora dialogs: private messages between two users, sharded over PostgreSQL servers.
//!
//! A dialog is the unordered pair of its users; it hashes to one of a fixed number of logical
//! shards, and a shard map (in the main database) says which PostgreSQL server holds each
//! logical shard. Resharding moves logical shards between servers while messages keep coming
//! (`reshard`). See docs/dialogs.md.
//!
//! Layers: `http` (thin handlers) calls [`rules::Dialogs`] (rules, routing), which reads and
//! writes a shard through `store` (SQL only) on the server [`shards::Shards`] names.

pub mod config;
pub mod error;
pub mod http;
pub mod reshard;
pub mod rules;
pub mod shards;
mod store;
pub mod unread;

pub use config::DialogsConfig;
pub use error::DialogsError;

mod control {
    refinery::embed_migrations!("migrations/control");
}

mod shard {
    refinery::embed_migrations!("migrations/shard");
}

/// The shard map's tables, applied to the main database (beside the social network's own,
/// under a history table of their own).
pub fn control_migrations() -> refinery::Runner {
    let mut runner = control::migrations::runner();
    runner.set_migration_table_name("dialogs_schema_history");
    runner
}

/// The schema of every shard server.
pub fn shard_migrations() -> refinery::Runner {
    let mut runner = shard::migrations::runner();
    runner.set_migration_table_name("dialogs_shard_schema_history");
    runner
}

use agora_platform::cache::Redis;
use agora_platform::db;
use agora_platform::settings::PlatformSettings;

/// Dialogs as a service of the platform. Fails only on invalid configuration; an empty shard
/// map (no shard servers yet) and servers that are down are answered 503 per request.
pub async fn service(
    config: &DialogsConfig,
    settings: &PlatformSettings,
) -> anyhow::Result<agora_platform::service::Service> {
    Ok(http::service_of(connect(config, settings).await?))
}

/// Dialogs' operations on the configured servers, for a process that also serves them in
/// another form (the web front end's pages).
pub async fn connect(
    config: &DialogsConfig,
    settings: &PlatformSettings,
) -> anyhow::Result<rules::Dialogs> {
    let main = db::connect_pool(&settings.database, "agora-dialogs")?;
    dialogs(config, settings, main).await
}

/// Rebuilds every unread counter from the shards (`agora dialogs repair-unread`); how many
/// dialog sides were set.
pub async fn repair_unread(
    config: &DialogsConfig,
    settings: &PlatformSettings,
) -> anyhow::Result<u64> {
    let main = db::connect_batch_pool(&settings.database, "agora-dialogs-repair")?;
    Ok(dialogs(config, settings, main)
        .await?
        .repair_unread()
        .await?)
}

async fn dialogs(
    config: &DialogsConfig,
    settings: &PlatformSettings,
    main: db::DbPool,
) -> anyhow::Result<rules::Dialogs> {
    let redis = Redis::new(&settings.redis)?;
    let sessions = settings.sessions(main.clone())?;
    let counters = unread::UnreadCounters::new(redis.clone(), &settings.key_prefix());
    let shards = shards::Shards::connect(
        main.clone(),
        &settings.database,
        redis,
        &settings.key_prefix(),
        config,
    )
    .await?;
    Ok(rules::Dialogs::new(
        shards,
        agora_platform::identity::Directory::new(main),
        sessions,
        counters,
        config,
    ))
}

/// Applies the shard map's migrations to the main database and, when the map is empty, fills it
/// from `config.shards` (logical shards round-robin over the servers); then applies the shard
/// schema to every server of the map and of the config. Safe to run again.
pub async fn migrate(config: &DialogsConfig, database_url: &str) -> anyhow::Result<Vec<String>> {
    let mut applied = db::run_migrations(database_url, control_migrations()).await?;
    for server in &config.shards {
        for migration in db::run_migrations(&server.url, shard_migrations()).await? {
            applied.push(format!("{} on {}", migration, server.name));
        }
    }
    if reshard::fill_empty_map(database_url, config).await? {
        applied.push(format!(
            "dialog shard map: {} logical shards over {}",
            config.logical_shards,
            config
                .shards
                .iter()
                .map(|server| server.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(applied)
}
