//! `agora migrate`: every service's schema, and the dialogs' shard servers and map.

use agora_dialogs::DialogsConfig;
use agora_platform::config::DatabaseConfig;
use agora_platform::db;

#[derive(clap::Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    database: DatabaseConfig,

    #[command(flatten)]
    dialogs: DialogsConfig,
}

pub async fn run(args: MigrateArgs) -> anyhow::Result<()> {
    let mut applied = db::run_migrations(&args.database.url, agora_social::migrations()).await?;
    applied.extend(agora_dialogs::migrate(&args.dialogs, &args.database.url).await?);
    if applied.is_empty() {
        println!("migrations: schema is up to date");
    } else {
        for migration in applied {
            println!("migrations: applied {migration}");
        }
    }
    Ok(())
}
