//! Code every agora service shares: configuration, the PostgreSQL pool and migrations, the error
//! envelope, ids, password and token handling, telemetry and the HTTP plumbing around handlers.
//!
//! Services (social network, dialogs, web, shop, UGC) own their domain and routes; everything here is
//! transport- and domain-agnostic so each service maps it to its own contract.

pub mod amqp;
pub mod auth;
pub mod cache;
pub mod config;
pub mod credentials;
pub mod db;
pub mod error;
pub mod forward;
pub mod http;
pub mod identity;
pub mod ids;
pub mod invalidation;
pub mod outbox;
pub mod peer;
pub mod replicas;
pub mod request_id;
pub mod server;
pub mod service;
pub mod session;
pub mod settings;
pub mod supervise;
pub mod telemetry;
#[cfg(feature = "test-support")]
pub mod testing;
