//! agora shop: a catalog, carts, orders and customer records (docs/shop.md).
//!
//! Its database sits behind pgpool-II, so every id and timestamp is made here and sent as a
//! parameter. Carts live in PostgreSQL or in Redis (`AGORA_SHOP_CARTS`). Users are the
//! platform's: requests carry the social network's bearer tokens, checked by
//! `platform::session` against the main database.
//!
//! Layers: `http` (thin handlers) calls [`rules::Shop`] (rules), which uses `store` (SQL only)
//! and `carts` (the Redis carts).

pub mod carts;
pub mod config;
pub mod domain;
pub mod error;
pub mod http;
pub mod rules;
pub mod store;

pub use config::{CartBackend, ShopConfig};
pub use error::ShopError;

use agora_platform::cache::Redis;
use agora_platform::db;
use agora_platform::ids::IdGenerator;
use agora_platform::settings::PlatformSettings;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// The shop database's schema, under a history table of its own.
pub fn migrations() -> refinery::Runner {
    let mut runner = embedded::migrations::runner();
    runner.set_migration_table_name("shop_schema_history");
    runner
}

/// Applies the shop's migrations to its database.
pub async fn migrate(config: &ShopConfig) -> anyhow::Result<Vec<String>> {
    db::run_migrations(&config.database_url, migrations()).await
}

/// The shop as a service of the platform. Fails only on invalid configuration; databases
/// that are down are answered 503 per request.
pub fn service(
    config: &ShopConfig,
    settings: &PlatformSettings,
) -> anyhow::Result<agora_platform::service::Service> {
    Ok(http::service_of(shop(config, settings)?))
}

pub fn shop(config: &ShopConfig, settings: &PlatformSettings) -> anyhow::Result<rules::Shop> {
    let main = db::connect_pool(&settings.database, "agora-shop")?;
    let pool = db::connect_pool(&config.database(&settings.database), "agora-shop")?;
    let redis = Redis::new(&settings.redis)?;
    let sessions = settings.sessions(main)?;
    let carts = match config.carts {
        CartBackend::Postgres => rules::Carts::Postgres,
        CartBackend::Redis => {
            let redis = if config.redis_sentinels.is_empty() {
                redis
            } else {
                Redis::sentinel(
                    &config.redis_sentinels,
                    &config.redis_master,
                    settings.redis.timeout(),
                )?
            };
            rules::Carts::Redis(Box::new(carts::RedisCarts::new(
                redis,
                &settings.key_prefix(),
            )))
        }
    };
    let ids = match config.node {
        Some(node) => IdGenerator::new(i64::from(node)),
        None => IdGenerator::random_node(),
    };
    Ok(rules::Shop::new(
        store::Store::new(pool),
        carts,
        sessions,
        ids,
        config.deadline(),
    ))
}
