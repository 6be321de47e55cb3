use clap::Args;

use agora_platform::config::DatabaseConfig;

/// UGC's own settings; flags or `AGORA_*` variables. It shares sessions (the main database),
/// Redis and the namespace with the other services.
#[derive(Debug, Clone, Args)]
pub struct UgcConfig {
    /// UGC's database: a database of its own, on the main server unless put elsewhere.
    #[arg(
        id = "ugc_database_url",
        long = "ugc-database-url",
        env = "AGORA_UGC_DATABASE_URL",
        default_value = "postgres://agora:agora@127.0.0.1:61432/agora_ugc"
    )]
    pub database_url: String,

    /// Connections in UGC's pool.
    #[arg(id = "ugc_pool_size", long = "ugc-db-pool-size", env = "AGORA_UGC_DB_POOL_SIZE", default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub pool_size: u32,

    /// The longest one request's database work may take, in milliseconds, waiting for a pooled
    /// connection included; past it 503 (5004 for a write that may have committed).
    #[arg(id = "ugc_deadline_ms", long = "ugc-deadline-ms", env = "AGORA_UGC_DEADLINE_MS", default_value_t = 5_000,
          value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub deadline_ms: u64,
}

impl UgcConfig {
    pub fn for_database(url: impl Into<String>) -> Self {
        Self {
            database_url: url.into(),
            pool_size: 16,
            deadline_ms: 5_000,
        }
    }

    pub fn deadline(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.deadline_ms)
    }

    /// UGC's pool settings: the main database's timeouts, UGC's URL and size.
    pub fn database(&self, main: &DatabaseConfig) -> DatabaseConfig {
        main.for_service(&self.database_url, self.pool_size)
    }
}
