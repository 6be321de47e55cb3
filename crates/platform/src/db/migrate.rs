//! Creating a service's database and applying its embedded migrations.

use std::str::FromStr;

use anyhow::Context;
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

/// Session-level advisory lock key that serialises migrations across instances.
const MIGRATION_LOCK_KEY: i64 = 0x6167_6f72_615f_6d69; // "agora_mi"

/// Creates the database `database_url` names when its server does not have it yet (a service
/// with a database of its own on a shared server), through the server's `postgres` database.
pub async fn ensure_database(database_url: &str) -> anyhow::Result<()> {
    let config =
        tokio_postgres::Config::from_str(database_url).context("parsing a database URL")?;
    let Some(name) = config.get_dbname().map(str::to_owned) else {
        return Ok(());
    };
    let mut maintenance = config.clone();
    maintenance.dbname("postgres");
    let (client, connection) = maintenance
        .connect(NoTls)
        .await
        .with_context(|| format!("connecting to the server of database {name}"))?;
    let connection = tokio::spawn(connection);
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await?
        .is_some();
    if !exists {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        match client
            .batch_execute(&format!("CREATE DATABASE {quoted}"))
            .await
        {
            Ok(()) => {}
            // Another process made it meanwhile.
            Err(error) if error.code() == Some(&SqlState::DUPLICATE_DATABASE) => {}
            Err(error) => return Err(error).with_context(|| format!("creating database {name}")),
        }
    }
    drop(client);
    let _ = connection.await;
    Ok(())
}

/// Applies a service's embedded migrations on a dedicated connection. Safe to run from several
/// instances at once: they queue on an advisory lock and later ones find nothing to do.
pub async fn run_migrations(
    database_url: &str,
    runner: refinery::Runner,
) -> anyhow::Result<Vec<String>> {
    let (mut client, connection) = tokio_postgres::connect(database_url, NoTls)
        .await
        .context("connecting to PostgreSQL to migrate")?;
    let connection = tokio::spawn(connection);
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY])
        .await
        .context("taking the migration lock")?;
    let outcome = runner.set_grouped(false).run_async(&mut client).await;
    // The lock dies with the session anyway; unlocking just frees it sooner.
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY])
        .await;
    drop(client);
    let _ = connection.await;
    let report = outcome.context("applying migrations")?;
    Ok(report
        .applied_migrations()
        .iter()
        .map(|migration| migration.to_string())
        .collect())
}
