//! `agora dialogs`: operating the dialogs' shards.

use agora_dialogs::config::ShardServer;
use agora_dialogs::reshard;
use agora_dialogs::shards::{LogicalShard, map_channel};
use agora_platform::cache::Redis;
use agora_platform::invalidation::Invalidations;
use agora_platform::settings::PlatformSettings;
use clap::{Args, Subcommand};

#[derive(Subcommand)]
pub enum DialogsCommand {
    /// Moves logical shards onto a shard server (added if new) while messages keep coming:
    /// copy, catch up, freeze, last pass, switch the map, clean up (docs/dialogs.md). Running
    /// it again finishes a move that failed part-way.
    Reshard(ReshardArgs),
    /// Rebuilds every unread counter in Redis from the shard servers (after Redis lost its
    /// data, or to check them). Sends during the repair may need the outbox sweeper's next
    /// pass to show up again.
    RepairUnread(RepairArgs),
}

#[derive(Args)]
pub struct RepairArgs {
    #[command(flatten)]
    platform: PlatformSettings,

    #[command(flatten)]
    dialogs: agora_dialogs::DialogsConfig,
}

#[derive(Args)]
pub struct ReshardArgs {
    #[command(flatten)]
    platform: PlatformSettings,

    /// The server to move shards onto: `name=postgres://…`.
    #[arg(long = "to")]
    to: ShardServer,

    /// Move this many logical shards, taken from the servers that hold the most.
    #[arg(
        long = "count",
        conflicts_with = "shards",
        required_unless_present = "shards"
    )]
    count: Option<usize>,

    /// Move exactly these logical shards (comma-separated).
    #[arg(long = "shards", value_delimiter = ',')]
    shards: Vec<i32>,
}

pub async fn run(command: DialogsCommand) -> anyhow::Result<()> {
    match command {
        DialogsCommand::Reshard(args) => reshard_command(args).await,
        DialogsCommand::RepairUnread(args) => {
            let sides = agora_dialogs::repair_unread(&args.dialogs, &args.platform).await?;
            println!("repair-unread: {sides} dialog sides set from the shards");
            Ok(())
        }
    }
}

async fn reshard_command(args: ReshardArgs) -> anyhow::Result<()> {
    let shards = match args.count {
        Some(count) => {
            reshard::choose_shards(&args.platform.database.url, &args.to.name, count).await?
        }
        None => args.shards.iter().copied().map(LogicalShard).collect(),
    };
    let changes = Invalidations::new(
        Redis::new(&args.platform.redis)?,
        map_channel(&args.platform.key_prefix()),
    );
    println!(
        "reshard: moving {} logical shards to {}",
        shards.len(),
        args.to.name
    );
    let reports = reshard::move_shards(
        &args.platform.database.url,
        &args.to,
        &shards,
        || changes.announce(0),
        |report| {
            println!(
                "reshard: shard {:>4} {} -> {}: {} messages, {} dialogs, senders paused {:.1} ms, {:.2} s in all",
                report.shard.0,
                report.from,
                report.to,
                report.messages,
                report.dialogs,
                report.frozen.as_secs_f64() * 1e3,
                report.took.as_secs_f64()
            );
        },
        |_, _| async {},
    )
    .await?;
    let longest = reports
        .iter()
        .map(|report| report.frozen)
        .max()
        .unwrap_or_default();
    println!(
        "reshard: done, {} shards moved; longest pause {:.1} ms",
        reports.len(),
        longest.as_secs_f64() * 1e3
    );
    Ok(())
}
