//! End-to-end tests of the social network API: the real server on port 0, real PostgreSQL.

mod common;
mod degrade;
mod fanout;
mod feed;
mod friends;
mod hardening;
mod live;
mod ops;
mod ordering;
mod platform;
mod posts;
mod replication;
mod seed;
mod users;
