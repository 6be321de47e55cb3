//! UGC alone in its process, as `agora serve --services ugc` runs it, on a fresh UGC database
//! and a fresh main database (sessions) of the test stack, reached through a proxy that can
//! cut the UGC database off. Users and tokens are made directly: rows in `users`, sessions
//! through the platform.

mod bookmarks;
mod common;
mod hardening;
mod ratings;
mod replication;
mod reviews;
