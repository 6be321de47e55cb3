//! What the tests that run the `agora` binary share: the test stack's addresses and free ports.

#![allow(dead_code)] // each test binary uses a different subset

pub fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.into())
}

pub use agora_platform::testing::redis_url;

/// The test stack's RabbitMQ.
pub fn amqp_url() -> String {
    env_or("AGORA_AMQP_URL", "amqp://guest:guest@127.0.0.1:62672/%2f")
}

/// A port nothing listens on right now, for a child process to bind.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
