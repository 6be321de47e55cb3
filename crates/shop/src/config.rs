use clap::{Args, ValueEnum};

use agora_platform::config::DatabaseConfig;

/// Where carts live.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum CartBackend {
    /// Table `cart_lines` of the shop's database.
    #[default]
    Postgres,
    /// A Redis hash per user (docs/shop.md): a shopaholic changes the cart all the time.
    Redis,
}

/// The shop's own settings; flags or `AGORA_*` variables. It shares sessions (the main
/// database), Redis and the namespace with the other services.
#[derive(Debug, Clone, Args)]
pub struct ShopConfig {
    /// The shop's database. Behind pgpool-II, list every pgpool instance: the pool spreads its
    /// connections over them (`load_balance_hosts=random`) and skips one that is down.
    #[arg(
        long = "shop-database-url",
        env = "AGORA_SHOP_DATABASE_URL",
        default_value = "postgres://agora:agora@127.0.0.1:61471,127.0.0.1:61472/shop?load_balance_hosts=random"
    )]
    pub database_url: String,

    /// Connections in the shop's pool.
    #[arg(id = "shop_pool_size", long = "shop-db-pool-size", env = "AGORA_SHOP_DB_POOL_SIZE", default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub pool_size: u32,

    /// The longest one request's database work may take, in milliseconds, waiting for a pooled
    /// connection included. Past it the request is answered 503 (5004 for a write that may
    /// have committed) and its connections are closed, not pooled: a pgpool-II that blocks
    /// during a backend's failure or an online recovery otherwise hangs them for good.
    #[arg(long = "shop-deadline-ms", env = "AGORA_SHOP_DEADLINE_MS", default_value_t = 8_000,
          value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub deadline_ms: u64,

    /// Where carts live: `postgres` or `redis`.
    #[arg(
        long = "shop-carts",
        env = "AGORA_SHOP_CARTS",
        value_enum,
        default_value_t
    )]
    pub carts: CartBackend,

    /// Redis Sentinel addresses (`host:port`, comma-separated) of the carts' Redis: writes go to
    /// the master they name, reads to a replica, and a failover is followed without a restart.
    /// Without them, carts use the deployment's Redis (`AGORA_REDIS_URL`).
    #[arg(
        long = "shop-redis-sentinels",
        env = "AGORA_SHOP_REDIS_SENTINELS",
        value_delimiter = ','
    )]
    pub redis_sentinels: Vec<String>,

    /// The master's name the sentinels watch.
    #[arg(
        long = "shop-redis-master",
        env = "AGORA_SHOP_REDIS_MASTER",
        default_value = "agora-shop"
    )]
    pub redis_master: String,

    /// This process's node number in the ids it makes (0-8191); random when unset.
    #[arg(long = "shop-node", env = "AGORA_SHOP_NODE",
          value_parser = clap::value_parser!(u16).range(0..=8191))]
    pub node: Option<u16>,
}

impl ShopConfig {
    pub fn for_database(url: impl Into<String>) -> Self {
        Self {
            database_url: url.into(),
            pool_size: 16,
            deadline_ms: 8_000,
            carts: CartBackend::Postgres,
            redis_sentinels: Vec::new(),
            redis_master: "agora-shop".to_owned(),
            node: None,
        }
    }

    pub fn deadline(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.deadline_ms)
    }

    /// The shop database's pool settings: the main database's timeouts, the shop's URL and size.
    pub fn database(&self, main: &DatabaseConfig) -> DatabaseConfig {
        main.for_service(&self.database_url, self.pool_size)
    }
}
