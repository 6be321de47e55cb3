//! Moving logical shards between shard servers while messages keep coming.
//!
//! For each logical shard, from its server (the source) to the target:
//! 1. **Copy** every message and dialog row of the shard to the target, whose gate for the
//!    shard is closed (nobody writes there yet). Writes go on at the source.
//! 2. **Catch up**: copy what arrived meanwhile (ids from a little before the last copied one,
//!    since ids are taken before commit), until a pass finds little.
//! 3. **Freeze**: close the source's gate. The `UPDATE` waits for every write in flight (they
//!    hold the gate row `FOR SHARE`); after it, no write for the shard can commit at the
//!    source. Senders now wait (they retry while the map still names the source); readers are
//!    still served by the source, which has every acknowledged message.
//! 4. **Last pass**: copy what arrived since the catch-up; nothing can arrive any more.
//! 5. **Switch**: open the target's gate, point the map at the target and bump its version in
//!    one transaction, and announce it. Senders retrying find the target.
//! 6. **Clean up**: delete the shard's rows at the source and its gate row.
//!
//! Copies are idempotent (`ON CONFLICT`). The pause a sender sees is steps 3-5, reported per
//! shard.
//!
//! **A move that dies part-way finishes by itself.** Each move is recorded in
//! `dialog_shard_moves` while the command holds a session advisory lock on the shard in the
//! main database. A command that dies (killed, its machine gone) loses its connection and so
//! the lock; every dialogs instance looks for such orphaned moves every second
//! ([`finish_abandoned_moves`]) and settles each under the same lock: if the map already names
//! the target, only the source's clean-up was left, and it is done; otherwise the move is
//! undone (the source's gate reopens, the target's partial copy goes), and senders are served
//! by the source again. Running the command again then starts the move afresh.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use agora_platform::db;
use tokio::sync::watch;
use tokio_postgres::{Client, NoTls};

use crate::config::{DialogsConfig, ShardServer};
use crate::shards::{LogicalShard, Shards};

/// Ids are milliseconds << 23: a message whose id was taken up to this long before a pass
/// may commit after it, so each pass starts this far below the last id copied.
const ID_RACE_WINDOW: i64 = 30_000 << 23;

/// Rows copied per statement.
const COPY_BATCH: i64 = 5_000;

/// A catch-up pass that copies fewer messages than this is the last one before the freeze.
const SETTLED: u64 = 500;

async fn connect(url: &str) -> anyhow::Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "reshard connection ended");
        }
    });
    Ok(client)
}

/// Fills an empty shard map from `config.shards` and opens each server's gates for its
/// shards; `false` if the map was already filled (or no servers are configured).
pub async fn fill_empty_map(database_url: &str, config: &DialogsConfig) -> anyhow::Result<bool> {
    if config.shards.is_empty() {
        return Ok(false);
    }
    let mut control = connect(database_url).await?;
    let tx = control.transaction().await?;
    tx.batch_execute("LOCK TABLE dialog_shard_map IN EXCLUSIVE MODE")
        .await?;
    let filled: i64 = tx
        .query_one("SELECT count(*) FROM dialog_shard_map", &[])
        .await?
        .get(0);
    if filled > 0 {
        return Ok(false);
    }
    let servers = &config.shards;
    let mut owned: HashMap<&str, Vec<i32>> = HashMap::new();
    for shard in 0..config.logical_shards as i32 {
        let server = &servers[shard as usize % servers.len()];
        owned.entry(&server.name).or_default().push(shard);
    }
    for server in servers {
        // Gates first: a map naming a server whose gates are not open would refuse writes.
        let shard_db = connect(&server.url).await?;
        let shards = owned.get(server.name.as_str()).cloned().unwrap_or_default();
        shard_db
            .execute(
                "INSERT INTO shard_gates (logical_shard, open) SELECT unnest($1::int[]), true \
                 ON CONFLICT (logical_shard) DO UPDATE SET open = true",
                &[&shards],
            )
            .await?;
        upsert_server(&tx, server).await?;
        tx.execute(
            "INSERT INTO dialog_shard_map (logical_shard, server) SELECT unnest($1::int[]), $2",
            &[&shards, &server.name],
        )
        .await?;
    }
    bump_map_version(&tx).await?;
    tx.commit().await?;
    Ok(true)
}

/// Every change of the map bumps its version, in the change's transaction.
async fn bump_map_version(tx: &tokio_postgres::Transaction<'_>) -> anyhow::Result<()> {
    tx.execute(
        "UPDATE dialog_shard_map_version SET version = version + 1",
        &[],
    )
    .await?;
    Ok(())
}

/// Adds a shard server to the map's list, or points its name at a new URL.
async fn upsert_server(
    control: &impl tokio_postgres::GenericClient,
    server: &ShardServer,
) -> anyhow::Result<()> {
    control
        .execute(
            "INSERT INTO dialog_shard_servers (name, url) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET url = EXCLUDED.url",
            &[&server.name, &server.url],
        )
        .await?;
    Ok(())
}

/// The advisory lock class of shard moves (the two-integer key form: `(class, shard)`).
const MOVE_LOCK_CLASS: i32 = 0x5EA4D;

/// Where a move is, for the hook [`move_shards`] calls after each step's work (tests stop a
/// move there to prove it settles by itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checkpoint {
    /// The first full copy is at the target.
    Copied,
    /// Catch-up passes found little more.
    CaughtUp,
    /// The source's gate is closed: senders wait.
    Frozen,
    /// The last pass copied what arrived before the freeze.
    LastPassDone,
    /// The target's gate is open, the map still names the source.
    TargetOpened,
    /// The map names the target; the source still has the rows.
    Switched,
    /// The source's messages are gone, its dialogs and gate not yet.
    SourceMessagesDeleted,
}

impl Checkpoint {
    pub const ALL: [Checkpoint; 7] = [
        Checkpoint::Copied,
        Checkpoint::CaughtUp,
        Checkpoint::Frozen,
        Checkpoint::LastPassDone,
        Checkpoint::TargetOpened,
        Checkpoint::Switched,
        Checkpoint::SourceMessagesDeleted,
    ];

    /// The step the move is in at this checkpoint, as recorded in `dialog_shard_moves.step`.
    fn step(self) -> &'static str {
        match self {
            Checkpoint::Copied => "catch_up",
            Checkpoint::CaughtUp => "freeze",
            Checkpoint::Frozen | Checkpoint::LastPassDone => "last_pass",
            Checkpoint::TargetOpened => "switch",
            Checkpoint::Switched | Checkpoint::SourceMessagesDeleted => "clean_up",
        }
    }
}

/// What moving one logical shard did.
#[derive(Debug, Clone)]
pub struct MoveReport {
    pub shard: LogicalShard,
    pub from: String,
    pub to: String,
    pub messages: u64,
    pub dialogs: u64,
    /// From closing the source's gate to opening the target's: the longest a sender waits.
    pub frozen: Duration,
    pub took: Duration,
}

/// Which logical shards to move to `target`: the given ones, or `count` taken from the
/// servers holding the most, one at a time.
pub async fn choose_shards(
    database_url: &str,
    target: &str,
    count: usize,
) -> anyhow::Result<Vec<LogicalShard>> {
    let control = connect(database_url).await?;
    let mut by_server: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for row in control
        .query(
            "SELECT server, logical_shard FROM dialog_shard_map ORDER BY logical_shard",
            &[],
        )
        .await?
    {
        by_server.entry(row.get(0)).or_default().push(row.get(1));
    }
    by_server.remove(target);
    let mut chosen = Vec::new();
    while chosen.len() < count {
        let Some((_, shards)) = by_server
            .iter_mut()
            .filter(|(_, shards)| !shards.is_empty())
            .max_by_key(|(_, shards)| shards.len())
        else {
            break;
        };
        chosen.push(LogicalShard(shards.pop().expect("not empty")));
    }
    Ok(chosen)
}

/// Moves each of `shards` to `target` (added to the servers if new), one after another,
/// calling `progress` after each. `announce` tells running instances the map changed;
/// `checkpoint` is awaited after each step's work (see [`Checkpoint`]).
pub async fn move_shards<A, Fut, C, CFut>(
    database_url: &str,
    target: &ShardServer,
    shards: &[LogicalShard],
    announce: A,
    mut progress: impl FnMut(&MoveReport),
    checkpoint: C,
) -> anyhow::Result<Vec<MoveReport>>
where
    A: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
    C: Fn(LogicalShard, Checkpoint) -> CFut,
    CFut: std::future::Future<Output = ()>,
{
    db::run_migrations(&target.url, crate::shard_migrations()).await?;
    let mut control = connect(database_url).await?;
    upsert_server(&control, target).await?;
    let target_db = connect(&target.url).await?;
    let mut reports = Vec::new();
    for &shard in shards {
        // Held until this shard's move is over; a dead command's lock goes with its connection.
        control
            .execute(
                "SELECT pg_advisory_lock($1, $2)",
                &[&MOVE_LOCK_CLASS, &shard.0],
            )
            .await?;
        // A move of this shard that died before: settle it first.
        if settle_move(&control, shard).await?.is_some() {
            announce().await;
        }
        let report = move_shard(
            &mut control,
            &target_db,
            target,
            shard,
            &announce,
            &checkpoint,
        )
        .await?;
        control
            .execute(
                "SELECT pg_advisory_unlock($1, $2)",
                &[&MOVE_LOCK_CLASS, &shard.0],
            )
            .await?;
        if let Some(report) = report {
            progress(&report);
            reports.push(report);
        }
    }
    Ok(reports)
}

/// Moves one shard, recorded in `dialog_shard_moves` until it is over; `None` when the shard
/// is at the target already.
async fn move_shard<A, Fut, C, CFut>(
    control: &mut Client,
    target_db: &Client,
    target: &ShardServer,
    shard: LogicalShard,
    announce: &A,
    checkpoint: &C,
) -> anyhow::Result<Option<MoveReport>>
where
    A: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
    C: Fn(LogicalShard, Checkpoint) -> CFut,
    CFut: std::future::Future<Output = ()>,
{
    let started = Instant::now();
    let row = control
        .query_one(
            "SELECT m.server, s.url FROM dialog_shard_map m \
             JOIN dialog_shard_servers s ON s.name = m.server WHERE m.logical_shard = $1",
            &[&shard.0],
        )
        .await?;
    let (from, source_url): (String, String) = (row.get(0), row.get(1));
    if from == target.name {
        return Ok(None);
    }
    control
        .execute(
            "INSERT INTO dialog_shard_moves (logical_shard, source, target, step) \
             VALUES ($1, $2, $3, 'copy')",
            &[&shard.0, &from, &target.name],
        )
        .await?;
    let source = connect(&source_url).await?;
    let mut report = MoveReport {
        shard,
        from: from.clone(),
        to: target.name.clone(),
        messages: 0,
        dialogs: 0,
        frozen: Duration::ZERO,
        took: Duration::ZERO,
    };
    target_db
        .execute(
            "INSERT INTO shard_gates (logical_shard, open) VALUES ($1, false) \
             ON CONFLICT (logical_shard) DO UPDATE SET open = false",
            &[&shard.0],
        )
        .await?;
    // 1-2. Copy, then catch up until little arrives between passes.
    let mut since_id = 0;
    let mut since_time = 0.0;
    let mut first = true;
    loop {
        let pass_started = source_clock(&source).await?;
        let (copied, last_id) = copy_messages(&source, target_db, shard, since_id).await?;
        let dialogs = copy_dialogs(
            &source,
            target_db,
            shard,
            if first { None } else { Some(since_time) },
        )
        .await?;
        report.messages += copied;
        report.dialogs += dialogs;
        since_id = last_id.max(since_id) - ID_RACE_WINDOW;
        since_time = pass_started - 30.0;
        if first {
            reach(control, checkpoint, shard, Checkpoint::Copied).await?;
        } else if copied < SETTLED {
            break;
        }
        first = false;
    }
    reach(control, checkpoint, shard, Checkpoint::CaughtUp).await?;
    // 3. Freeze: waits for writes in flight; none can commit at the source after it.
    let frozen_at = Instant::now();
    source
        .execute(
            "UPDATE shard_gates SET open = false WHERE logical_shard = $1",
            &[&shard.0],
        )
        .await?;
    reach(control, checkpoint, shard, Checkpoint::Frozen).await?;
    // 4. The last pass: nothing arrives any more.
    let (copied, _) = copy_messages(&source, target_db, shard, since_id).await?;
    report.messages += copied;
    report.dialogs += copy_dialogs(&source, target_db, shard, Some(since_time)).await?;
    reach(control, checkpoint, shard, Checkpoint::LastPassDone).await?;
    // 5. Switch: the target opens, then the map names it.
    target_db
        .execute(
            "UPDATE shard_gates SET open = true WHERE logical_shard = $1",
            &[&shard.0],
        )
        .await?;
    reach(control, checkpoint, shard, Checkpoint::TargetOpened).await?;
    let tx = control.transaction().await?;
    tx.execute(
        "UPDATE dialog_shard_map SET server = $2 WHERE logical_shard = $1",
        &[&shard.0, &target.name],
    )
    .await?;
    bump_map_version(&tx).await?;
    tx.commit().await?;
    report.frozen = frozen_at.elapsed();
    announce().await;
    reach(control, checkpoint, shard, Checkpoint::Switched).await?;
    // 6. Clean up the source.
    delete_shard_messages(&source, shard).await?;
    reach(
        control,
        checkpoint,
        shard,
        Checkpoint::SourceMessagesDeleted,
    )
    .await?;
    cleanup(&source, shard).await?;
    control
        .execute(
            "DELETE FROM dialog_shard_moves WHERE logical_shard = $1",
            &[&shard.0],
        )
        .await?;
    report.took = started.elapsed();
    Ok(Some(report))
}

/// Records the step a move is in, then lets the hook see the checkpoint.
async fn reach<C, CFut>(
    control: &Client,
    checkpoint: &C,
    shard: LogicalShard,
    point: Checkpoint,
) -> anyhow::Result<()>
where
    C: Fn(LogicalShard, Checkpoint) -> CFut,
    CFut: std::future::Future<Output = ()>,
{
    control
        .execute(
            "UPDATE dialog_shard_moves SET step = $2, updated_at = now() WHERE logical_shard = $1",
            &[&shard.0, &point.step()],
        )
        .await?;
    checkpoint(shard, point).await;
    Ok(())
}

/// How an abandoned move was settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// The map named the target: the source was cleaned up.
    Finished { shard: LogicalShard, step: String },
    /// The map still named the source: its gate reopened and the target's copy went.
    Undone { shard: LogicalShard, step: String },
}

/// Settles the recorded move of `shard`, if there is one. The caller holds the shard's move
/// lock, so no living command is moving it.
async fn settle_move(
    control: &impl tokio_postgres::GenericClient,
    shard: LogicalShard,
) -> anyhow::Result<Option<Settled>> {
    let Some(row) = control
        .query_opt(
            "SELECT mv.source, src.url, mv.target, tgt.url, mv.step, m.server \
             FROM dialog_shard_moves mv \
             JOIN dialog_shard_servers src ON src.name = mv.source \
             JOIN dialog_shard_servers tgt ON tgt.name = mv.target \
             JOIN dialog_shard_map m ON m.logical_shard = mv.logical_shard \
             WHERE mv.logical_shard = $1",
            &[&shard.0],
        )
        .await?
    else {
        return Ok(None);
    };
    let (source_url, target_name, target_url, step, owner): (
        String,
        String,
        String,
        String,
        String,
    ) = (row.get(1), row.get(2), row.get(3), row.get(4), row.get(5));
    let settled = if owner == target_name {
        let source = connect(&source_url).await?;
        delete_shard_messages(&source, shard).await?;
        cleanup(&source, shard).await?;
        Settled::Finished { shard, step }
    } else {
        // Senders first: the source has every acknowledged message, and nothing was written
        // at the target, which the map never named.
        let source = connect(&source_url).await?;
        source
            .execute(
                "UPDATE shard_gates SET open = true WHERE logical_shard = $1",
                &[&shard.0],
            )
            .await?;
        let target = connect(&target_url).await?;
        target
            .execute(
                "DELETE FROM shard_gates WHERE logical_shard = $1",
                &[&shard.0],
            )
            .await?;
        delete_shard_messages(&target, shard).await?;
        target
            .execute("DELETE FROM dialogs WHERE logical_shard = $1", &[&shard.0])
            .await?;
        Settled::Undone { shard, step }
    };
    control
        .execute(
            "DELETE FROM dialog_shard_moves WHERE logical_shard = $1",
            &[&shard.0],
        )
        .await?;
    Ok(Some(settled))
}

/// Settles every recorded move whose command is gone (its lock is free), each under that lock;
/// returns what was settled. Called every second by each dialogs instance, so concurrent
/// callers are expected: the lock lets one settle a move and the others skip it.
pub async fn finish_abandoned_moves(control: &db::DbPool) -> anyhow::Result<Vec<Settled>> {
    let mut connection = control.get().await?;
    let shards: Vec<i32> = connection
        .query("SELECT logical_shard FROM dialog_shard_moves", &[])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let mut settled = Vec::new();
    for shard in shards {
        let tx = connection.transaction().await?;
        let free: bool = tx
            .query_one(
                "SELECT pg_try_advisory_xact_lock($1, $2)",
                &[&MOVE_LOCK_CLASS, &shard],
            )
            .await?
            .get(0);
        if !free {
            continue;
        }
        if let Some(done) = settle_move(&*tx, LogicalShard(shard)).await? {
            settled.push(done);
        }
        tx.commit().await?;
    }
    Ok(settled)
}

/// The source server's clock, in seconds since the epoch (row timestamps are its own).
async fn source_clock(source: &Client) -> anyhow::Result<f64> {
    Ok(source
        .query_one("SELECT extract(epoch FROM clock_timestamp())::float8", &[])
        .await?
        .get(0))
}

/// Copies the shard's messages with ids above `after`, in id order; how many, and the last id.
async fn copy_messages(
    source: &Client,
    target: &Client,
    shard: LogicalShard,
    after: i64,
) -> anyhow::Result<(u64, i64)> {
    let mut after = after;
    let mut copied = 0;
    loop {
        let rows = source
            .query(
                "SELECT dialog_low, dialog_high, id, sender, text, created_at FROM messages \
                 WHERE logical_shard = $1 AND id > $2 ORDER BY id LIMIT $3",
                &[&shard.0, &after, &COPY_BATCH],
            )
            .await?;
        if rows.is_empty() {
            return Ok((copied, after));
        }
        let column = |index: usize| rows.iter().map(move |row| row.get::<_, i64>(index));
        let lows: Vec<i64> = column(0).collect();
        let highs: Vec<i64> = column(1).collect();
        let ids: Vec<i64> = column(2).collect();
        let senders: Vec<i64> = column(3).collect();
        let texts: Vec<String> = rows.iter().map(|row| row.get(4)).collect();
        let created: Vec<std::time::SystemTime> = rows.iter().map(|row| row.get(5)).collect();
        copied += target
            .execute(
                "INSERT INTO messages (dialog_low, dialog_high, id, logical_shard, sender, text, \
                                       created_at) \
                 SELECT low, high, id, $1, sender, text, created \
                 FROM unnest($2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::text[], \
                             $7::timestamptz[]) AS t(low, high, id, sender, text, created) \
                 ON CONFLICT DO NOTHING",
                &[&shard.0, &lows, &highs, &ids, &senders, &texts, &created],
            )
            .await?;
        after = *ids.last().expect("not empty");
        if (rows.len() as i64) < COPY_BATCH {
            return Ok((copied, after));
        }
    }
}

/// Copies the shard's dialog rows, those touched since `since` (source clock, epoch seconds)
/// or all; how many.
async fn copy_dialogs(
    source: &Client,
    target: &Client,
    shard: LogicalShard,
    since: Option<f64>,
) -> anyhow::Result<u64> {
    let rows = source
        .query(
            "SELECT dialog_low, dialog_high, last_message_id, low_read_upto, high_read_upto \
             FROM dialogs WHERE logical_shard = $1 \
               AND touched_at >= to_timestamp(coalesce($2::float8, 0))",
            &[&shard.0, &since],
        )
        .await?;
    let mut copied = 0;
    for chunk in rows.chunks(COPY_BATCH as usize) {
        let column = |index: usize| chunk.iter().map(move |row| row.get::<_, i64>(index));
        let lows: Vec<i64> = column(0).collect();
        let highs: Vec<i64> = column(1).collect();
        let last: Vec<i64> = column(2).collect();
        let low_read: Vec<i64> = column(3).collect();
        let high_read: Vec<i64> = column(4).collect();
        copied += target
            .execute(
                "INSERT INTO dialogs (dialog_low, dialog_high, logical_shard, last_message_id, \
                                      low_read_upto, high_read_upto) \
                 SELECT low, high, $1, last, low_read, high_read \
                 FROM unnest($2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], \
                             $6::bigint[]) AS t(low, high, last, low_read, high_read) \
                 ON CONFLICT (dialog_low, dialog_high) DO UPDATE SET \
                     last_message_id = GREATEST(dialogs.last_message_id, EXCLUDED.last_message_id), \
                     low_read_upto = GREATEST(dialogs.low_read_upto, EXCLUDED.low_read_upto), \
                     high_read_upto = GREATEST(dialogs.high_read_upto, EXCLUDED.high_read_upto), \
                     touched_at = clock_timestamp()",
                &[&shard.0, &lows, &highs, &last, &low_read, &high_read],
            )
            .await?;
    }
    Ok(copied)
}

/// Deletes a shard's messages at one server, in batches.
async fn delete_shard_messages(server: &Client, shard: LogicalShard) -> anyhow::Result<()> {
    loop {
        let deleted = server
            .execute(
                "DELETE FROM messages WHERE ctid = ANY(ARRAY( \
                     SELECT ctid FROM messages WHERE logical_shard = $1 LIMIT $2))",
                &[&shard.0, &COPY_BATCH],
            )
            .await?;
        if deleted == 0 {
            return Ok(());
        }
    }
}

/// Deletes a moved shard's dialogs at its old server, and its gate (its messages went first).
async fn cleanup(source: &Client, shard: LogicalShard) -> anyhow::Result<()> {
    source
        .execute("DELETE FROM dialogs WHERE logical_shard = $1", &[&shard.0])
        .await?;
    source
        .execute(
            "DELETE FROM shard_gates WHERE logical_shard = $1",
            &[&shard.0],
        )
        .await?;
    Ok(())
}

/// Settles, every second, shard moves whose command died part-way (see
/// [`finish_abandoned_moves`]) until `stop` turns true.
pub async fn settle_abandoned_moves(shards: Shards, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
        match finish_abandoned_moves(shards.control()).await {
            Ok(settled) if settled.is_empty() => {}
            Ok(settled) => {
                for move_ in &settled {
                    tracing::warn!(?move_, "settled a shard move whose command died");
                }
                metrics::counter!("dialog_shard_moves_settled_total")
                    .increment(settled.len() as u64);
                shards.changed().await;
            }
            Err(error) => tracing::debug!(%error, "abandoned shard moves not checked"),
        }
    }
}
