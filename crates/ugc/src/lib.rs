//! agora UGC: what users of a film site write about films (docs/ugc.md) — ratings whose
//! averages stay exact under concurrent votes, reviews with likes and dislikes, bookmarks.
//!
//! Films belong to a catalog agora does not own: a film is its UUID, never looked up. Users are
//! the platform's: requests carry the social network's bearer tokens, checked by
//! `platform::session` against the main database. The store is PostgreSQL, chosen by the
//! storage study (docs/benchmarks/ugc-storage.md), in a database of its own.
//!
//! Layers: `http` (thin handlers) calls [`rules::Ugc`] (rules), which uses `store` (SQL only);
//! `domain` validates what clients send.

pub mod config;
pub mod domain;
pub mod error;
pub mod http;
pub mod rules;
pub mod store;

pub use config::UgcConfig;
pub use error::UgcError;

use agora_platform::db;
use agora_platform::settings::PlatformSettings;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// The UGC database's schema, under a history table of its own.
pub fn migrations() -> refinery::Runner {
    let mut runner = embedded::migrations::runner();
    runner.set_migration_table_name("ugc_schema_history");
    runner
}

/// Applies the UGC migrations to its database.
pub async fn migrate(config: &UgcConfig) -> anyhow::Result<Vec<String>> {
    db::run_migrations(&config.database_url, migrations()).await
}

/// UGC as a service of the platform. Fails only on invalid configuration; a database that is
/// down is answered 503 per request.
pub fn service(
    config: &UgcConfig,
    settings: &PlatformSettings,
) -> anyhow::Result<agora_platform::service::Service> {
    Ok(http::service_of(ugc(config, settings)?))
}

pub fn ugc(config: &UgcConfig, settings: &PlatformSettings) -> anyhow::Result<rules::Ugc> {
    let main = db::connect_pool(&settings.database, "agora-ugc")?;
    let pool = db::connect_pool(&config.database(&settings.database), "agora-ugc")?;
    let sessions = settings.sessions(main)?;
    Ok(rules::Ugc::new(
        store::Store::new(pool),
        sessions,
        config.deadline(),
    ))
}
