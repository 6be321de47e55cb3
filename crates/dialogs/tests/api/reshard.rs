//! Online resharding under load: senders keep sending uniquely numbered messages while half
//! of the logical shards move to a third server; a checker then classifies every
//! acknowledged message.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use agora_dialogs::config::ShardServer;
use agora_dialogs::reshard::{self, Checkpoint};
use agora_dialogs::shards::{DialogKey, map_channel};
use agora_platform::cache::{Redis, RedisConfig};
use agora_platform::ids::UserId;
use agora_platform::invalidation::Invalidations;
use reqwest::StatusCode;
use tokio::sync::Mutex;

use crate::common::{DialogsApp, connect, redis_url, shard_database};

/// Dialogs on 16 logical shards over two servers, a third server to move shards to, `count`
/// users, and the channel that announces map changes.
struct Setup {
    app: Arc<DialogsApp>,
    /// Dropped with the test.
    target_database: agora_platform::testing::TestDatabase,
    target: ShardServer,
    users: Vec<(UserId, String)>,
    changes: Invalidations,
}

async fn setup(count: usize, name: &str) -> Setup {
    let app = Arc::new(DialogsApp::spawn(16).await);
    let target_database = shard_database(2).await;
    let target = ShardServer {
        name: "shard3".into(),
        url: target_database.url.clone(),
    };
    let mut users = Vec::new();
    for at in 0..count {
        users.push(app.user(&format!("{name} {at}")).await);
    }
    let changes = Invalidations::new(
        Redis::new(&RedisConfig::for_url(redis_url())).unwrap(),
        map_channel(&format!("{}:", app.namespace)),
    );
    Setup {
        app,
        target_database,
        target,
        users,
        changes,
    }
}

#[tokio::test]
async fn resharding_under_load_loses_and_duplicates_nothing() {
    let Setup {
        app,
        target_database: _target_database,
        target,
        users,
        changes,
    } = setup(12, "Пишущий").await;
    let users = Arc::new(users);
    // Some history first, so there is something to copy.
    for at in 0..120 {
        let (from, to) = (&users[at % 12], &users[(at * 5 + 1) % 12]);
        if from.0 != to.0 {
            app.send_ok(&from.1, to.0, &format!("history {at}")).await;
        }
    }

    let stop = Arc::new(AtomicBool::new(false));
    // (text, dialog) of every acknowledged message; texts that got no answer.
    let acknowledged = Arc::new(Mutex::new(Vec::<(String, UserId, UserId)>::new()));
    let failed = Arc::new(Mutex::new(Vec::<String>::new()));
    let read_violations = Arc::new(Mutex::new(Vec::<String>::new()));
    let longest_send = Arc::new(Mutex::new(Duration::ZERO));
    let mut senders = Vec::new();
    for sender in 0..4usize {
        let (app, users, stop) = (app.clone(), users.clone(), stop.clone());
        let (acknowledged, failed, reads, longest) = (
            acknowledged.clone(),
            failed.clone(),
            read_violations.clone(),
            longest_send.clone(),
        );
        senders.push(tokio::spawn(async move {
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let from = &users[(sender * 3 + n) % 12];
                let to = &users[(sender * 3 + n * 7 + 1) % 12];
                n += 1;
                if from.0 == to.0 {
                    continue;
                }
                let text = format!("s{sender}-{n}");
                let started = Instant::now();
                let response = app.send(&from.1, to.0, &text).await;
                let took = started.elapsed();
                if response.status() == StatusCode::OK {
                    acknowledged.lock().await.push((text.clone(), from.0, to.0));
                    let mut longest = longest.lock().await;
                    *longest = (*longest).max(took);
                    drop(longest);
                    // The sender reads its own message right away, wherever the dialog is.
                    if n.is_multiple_of(5) {
                        let page: Vec<serde_json::Value> = app
                            .list(&from.1, to.0, "?limit=50")
                            .await
                            .json()
                            .await
                            .unwrap();
                        if !page.iter().any(|m| m["text"] == text) {
                            reads.lock().await.push(text);
                        }
                    }
                } else {
                    failed
                        .lock()
                        .await
                        .push(format!("{text}: {}", response.status()));
                }
            }
        }));
    }

    tokio::time::sleep(Duration::from_millis(500)).await;
    let chosen = reshard::choose_shards(&app.main.url, "shard3", 8)
        .await
        .unwrap();
    assert_eq!(chosen.len(), 8);
    let reports = reshard::move_shards(
        &app.main.url,
        &target,
        &chosen,
        || changes.announce(0),
        |_| {},
        |_, _| async {},
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for sender in senders {
        sender.await.unwrap();
    }

    // Every dialog, read whole through the API after the move.
    let acknowledged = acknowledged.lock().await.clone();
    let mut found: HashMap<String, usize> = HashMap::new();
    let mut pairs: Vec<(usize, usize)> = Vec::new();
    for a in 0..12 {
        for b in a + 1..12 {
            pairs.push((a, b));
        }
    }
    for (a, b) in pairs {
        for message in app.whole_dialog(&users[a].1, users[b].0).await {
            *found
                .entry(message["text"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
    }
    let lost: Vec<&String> = acknowledged
        .iter()
        .map(|(text, _, _)| text)
        .filter(|text| !found.contains_key(*text))
        .collect();
    let duplicated: Vec<(&String, &usize)> = found.iter().filter(|(_, n)| **n > 1).collect();
    let failed = failed.lock().await.clone();
    let read_violations = read_violations.lock().await.clone();
    let longest_pause = reports.iter().map(|r| r.frozen).max().unwrap_or_default();
    let moved_messages: u64 = reports.iter().map(|r| r.messages).sum();
    println!(
        "reshard under load: {} shards moved ({moved_messages} messages copied), {} messages \
         acknowledged, lost = {}, duplicated = {}, not acknowledged = {}, reads missing an \
         acknowledged message = {}; longest freeze {:.1} ms, slowest acknowledged send {:.1} ms",
        reports.len(),
        acknowledged.len(),
        lost.len(),
        duplicated.len(),
        failed.len(),
        read_violations.len(),
        longest_pause.as_secs_f64() * 1e3,
        longest_send.lock().await.as_secs_f64() * 1e3,
    );
    assert!(acknowledged.len() > 100, "the senders kept sending");
    assert!(lost.is_empty(), "lost: {lost:?}");
    assert!(duplicated.is_empty(), "duplicated: {duplicated:?}");
    assert!(
        failed.is_empty(),
        "sends refused during the move: {failed:?}"
    );
    assert!(
        read_violations.is_empty(),
        "reads missed: {read_violations:?}"
    );

    // The moved shards now live only on the new server.
    let moved: Vec<i32> = chosen.iter().map(|shard| shard.0).collect();
    for database in &app.shards {
        let left: i64 = connect(&database.url)
            .await
            .query_one(
                "SELECT count(*) FROM messages WHERE logical_shard = ANY($1)",
                &[&moved],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(left, 0, "moved shards are cleaned up at their old server");
    }
    let on_target: i64 = connect(&target.url)
        .await
        .query_one("SELECT count(*) FROM messages", &[])
        .await
        .unwrap()
        .get(0);
    assert!(on_target > 0);
}

/// Kills a move at each of its steps (the task running it is dropped with its connections, as
/// a killed command's are) while two senders keep writing to a dialog of the shard. Each
/// time, the dialogs service settles the move by itself within seconds, and every
/// acknowledged message is in the dialog exactly once.
#[tokio::test]
async fn a_move_killed_at_any_step_settles_by_itself() {
    let Setup {
        app,
        target_database: _target_database,
        target,
        users,
        changes,
    } = setup(16, "Переезжающий").await;
    for (round, stop_at) in Checkpoint::ALL.into_iter().enumerate() {
        let shard = reshard::choose_shards(&app.main.url, "shard3", 1)
            .await
            .unwrap()[0];
        let (a, b) = (0..users.len())
            .flat_map(|a| (a + 1..users.len()).map(move |b| (a, b)))
            .find(|&(a, b)| {
                DialogKey::of(users[a].0, users[b].0)
                    .unwrap()
                    .logical_shard(16)
                    == shard
            })
            .expect("a dialog on the shard");
        let (a, b) = (users[a].clone(), users[b].clone());
        for n in 0..20 {
            app.send_ok(&a.1, b.0, &format!("r{round} history {n}"))
                .await;
        }

        let stop = Arc::new(AtomicBool::new(false));
        let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
        let refused = Arc::new(Mutex::new(0usize));
        let mut senders = Vec::new();
        for sender in 0..2usize {
            let (app, stop, acknowledged, refused) = (
                app.clone(),
                stop.clone(),
                acknowledged.clone(),
                refused.clone(),
            );
            let (from, to) = if sender == 0 {
                (a.clone(), b.0)
            } else {
                (b.clone(), a.0)
            };
            senders.push(tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let text = format!("r{round} s{sender}-{n}");
                    if app.send(&from.1, to, &text).await.status() == StatusCode::OK {
                        acknowledged.lock().await.push(text);
                    } else {
                        *refused.lock().await += 1;
                    }
                }
            }));
        }

        let reached = Arc::new(tokio::sync::Notify::new());
        let mover = {
            let (url, target, reached) = (app.main.url.clone(), target.clone(), reached.clone());
            let changes = changes.clone();
            tokio::spawn(async move {
                reshard::move_shards(
                    &url,
                    &target,
                    &[shard],
                    || changes.announce(0),
                    |_| {},
                    |_, point| {
                        let reached = reached.clone();
                        async move {
                            if point == stop_at {
                                reached.notify_one();
                                std::future::pending::<()>().await;
                            }
                        }
                    },
                )
                .await
            })
        };
        tokio::time::timeout(Duration::from_secs(30), reached.notified())
            .await
            .unwrap_or_else(|_| panic!("the move never reached {stop_at:?}"));
        mover.abort();
        let killed = Instant::now();

        // Sending to the shard works again, and the move is settled.
        let sql = app.sql().await;
        let recovered = loop {
            let pending: i64 = sql
                .query_one("SELECT count(*) FROM dialog_shard_moves", &[])
                .await
                .unwrap()
                .get(0);
            if pending == 0
                && app
                    .send(&a.1, b.0, &format!("r{round} probe"))
                    .await
                    .status()
                    == StatusCode::OK
            {
                acknowledged.lock().await.push(format!("r{round} probe"));
                break killed.elapsed();
            }
            assert!(
                killed.elapsed() < Duration::from_secs(15),
                "the move killed at {stop_at:?} was not settled"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.store(true, Ordering::Relaxed);
        for sender in senders {
            sender.await.unwrap();
        }

        let mut found: HashMap<String, usize> = HashMap::new();
        for message in app.whole_dialog(&a.1, b.0).await {
            *found
                .entry(message["text"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
        let acknowledged = acknowledged.lock().await.clone();
        let lost = acknowledged
            .iter()
            .filter(|text| !found.contains_key(*text))
            .count();
        let duplicated = found.values().filter(|n| **n > 1).count();
        let owner: String = sql
            .query_one(
                "SELECT server FROM dialog_shard_map WHERE logical_shard = $1",
                &[&shard.0],
            )
            .await
            .unwrap()
            .get(0);
        let finished = matches!(
            stop_at,
            Checkpoint::Switched | Checkpoint::SourceMessagesDeleted
        );
        assert_eq!(
            owner == "shard3",
            finished,
            "killed at {stop_at:?}: the shard is on {owner}"
        );
        // The side that lost the shard keeps none of its rows.
        let leftovers = if finished {
            app.shards
                .iter()
                .map(|db| db.url.clone())
                .collect::<Vec<_>>()
        } else {
            vec![target.url.clone()]
        };
        for url in leftovers {
            let left: i64 = connect(&url)
                .await
                .query_one(
                    "SELECT count(*) FROM messages WHERE logical_shard = $1",
                    &[&shard.0],
                )
                .await
                .unwrap()
                .get(0);
            assert_eq!(left, 0, "killed at {stop_at:?}: rows left behind");
        }
        let line = format!(
            "killed at {stop_at:?}: {} by itself in {:.0} ms; {} acknowledged, {} refused, \
             lost = {lost}, duplicated = {duplicated}",
            if finished { "finished" } else { "undone" },
            recovered.as_secs_f64() * 1e3,
            acknowledged.len(),
            refused.lock().await,
        );
        println!("{line}");
        assert_eq!((lost, duplicated), (0, 0), "{line}");
    }
}
