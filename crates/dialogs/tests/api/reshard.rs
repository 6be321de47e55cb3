//! Online resharding under load: senders keep sending uniquely numbered messages while half
//! of the logical shards move to a third server; a checker then classifies every
//! acknowledged message.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use agora_dialogs::config::ShardServer;
use agora_dialogs::reshard;
use agora_dialogs::shards::map_channel;
use agora_platform::cache::{Redis, RedisConfig};
use agora_platform::ids::UserId;
use agora_platform::invalidation::Invalidations;
use reqwest::StatusCode;
use tokio::sync::Mutex;

use crate::common::{DialogsApp, connect, redis_url, shard_database};

#[tokio::test]
async fn resharding_under_load_loses_and_duplicates_nothing() {
    let app = Arc::new(DialogsApp::spawn(16).await);
    let target_database = shard_database(2).await;
    let target = ShardServer {
        name: "shard3".into(),
        url: target_database.url.clone(),
    };
    let mut users: Vec<(UserId, String)> = Vec::new();
    for at in 0..12 {
        users.push(app.user(&format!("Пишущий {at}")).await);
    }
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
    let changes = Invalidations::new(
        Redis::new(&RedisConfig::for_url(redis_url())).unwrap(),
        map_channel(&format!("{}:", app.namespace)),
    );
    let reports = reshard::move_shards(
        &app.main.url,
        &target,
        &chosen,
        || changes.announce(0),
        |_| {},
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
