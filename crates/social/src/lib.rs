//! The agora social network on the OTUS Highload Architect contract (`crates/social/api/otus-openapi.json`).
//!
//! Layers: `http` turns requests into calls on [`service::SocialService`], which holds the rules
//! (validation, ownership, tokens) and talks to PostgreSQL through `store`.

pub mod config;
pub mod demo;
pub mod domain;
pub mod error;
pub mod feed;
pub mod http;
pub mod live;
pub mod scenario;
pub mod seed;
pub mod service;
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
