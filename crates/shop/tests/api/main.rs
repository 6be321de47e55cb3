//! The shop alone in its process, as `agora serve --services shop` runs it, on a fresh shop
//! database and a fresh main database (sessions) of the test stack. Users and tokens are made
//! directly: rows in `users`, sessions through the platform. Carts in PostgreSQL and in Redis
//! run the same tests.

mod common;
mod hardening;
mod idempotency;
mod orders;
