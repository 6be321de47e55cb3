//! `agora migrate`: every service's schema, the dialogs' shard servers and map, UGC's database
//! (created on its server when missing), and (with `--shop`) the shop's database.

use agora_dialogs::DialogsConfig;
use agora_platform::config::DatabaseConfig;
use agora_platform::db;

#[derive(clap::Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    database: DatabaseConfig,

    #[command(flatten)]
    dialogs: DialogsConfig,

    /// Also migrate the shop's database (AGORA_SHOP_DATABASE_URL), which only deployments that
    /// run the shop have.
    #[arg(long = "shop", env = "AGORA_MIGRATE_SHOP")]
    shop: bool,

    #[command(flatten)]
    shop_config: agora_shop::ShopConfig,

    #[command(flatten)]
    ugc: agora_ugc::UgcConfig,
}

pub async fn run(args: MigrateArgs) -> anyhow::Result<()> {
    let mut applied = db::run_migrations(&args.database.url, agora_social::migrations()).await?;
    applied.extend(agora_dialogs::migrate(&args.dialogs, &args.database.url).await?);
    db::ensure_database(&args.ugc.database_url).await?;
    for migration in agora_ugc::migrate(&args.ugc).await? {
        applied.push(format!("{migration} on UGC's database"));
    }
    if args.shop {
        for migration in agora_shop::migrate(&args.shop_config).await? {
            applied.push(format!("{migration} on the shop's database"));
        }
    }
    if applied.is_empty() {
        println!("migrations: schema is up to date");
    } else {
        for migration in applied {
            println!("migrations: applied {migration}");
        }
    }
    Ok(())
}
