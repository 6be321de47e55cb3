//! `agora migrate`.

use agora_platform::config::DatabaseConfig;
use agora_platform::db;

#[derive(clap::Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    database: DatabaseConfig,
}

pub async fn run(args: MigrateArgs) -> anyhow::Result<()> {
    let applied = db::run_migrations(&args.database.url, agora_social::migrations()).await?;
    if applied.is_empty() {
        println!("migrations: schema is up to date");
    } else {
        for migration in applied {
            println!("migrations: applied {migration}");
        }
    }
    Ok(())
}
