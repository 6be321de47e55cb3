//! The agora social network on the OTUS Highload Architect contract (`crates/social/api/otus-openapi.json`).
//!
//! Layers: `http` turns requests into calls on [`rules::Social`], which holds the rules
//! (validation, ownership, tokens) and talks to PostgreSQL through `store`.

pub mod config;
pub mod demo;
pub mod domain;
pub mod error;
pub mod feed;
pub mod http;
pub mod live;
pub mod rules;
pub mod seed;
mod store;

pub use config::SocialConfig;
pub use error::SocialError;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// The social network's schema migrations, embedded in the binary.
pub fn migrations() -> refinery::Runner {
    embedded::migrations::runner()
}

/// The social network as a service the platform serves, on the configured databases (see
/// [`http::service_of`]).
pub fn service(
    config: &SocialConfig,
    settings: &agora_platform::settings::PlatformSettings,
) -> anyhow::Result<agora_platform::service::Service> {
    http::service_of(rules::Social::connect(settings, config)?, settings, config)
}
