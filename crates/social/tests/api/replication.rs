//! Reads on replicas, read-your-writes, and the formation's faults (docs/replication.md),
//! against the test stack's pg_auto_failover formation: a primary and two replicas in
//! synchronous quorum. Writes go through the real API; the checks read PostgreSQL directly.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use agora_platform::config::NamedServer;
use agora_platform::testing::{TestDatabase, url_with_database};

use reqwest::StatusCode;
use serde_json::{Value, json};

use agora_platform::testing::formation::{
    FORMATION, Formation, connect, formation, pause_replay, replica_start_time,
};

use crate::common::{TestApp, config_for, eventually};

/// An app on a fresh database of the formation, reading from `replicas` (node names).
async fn app_on_formation(
    formation: &Formation,
    replicas: &[String],
    tweak: impl FnOnce(&mut crate::common::AppConfig),
) -> TestApp {
    let database =
        TestDatabase::create_on(&formation.primary, "social", agora_social::migrations).await;
    let mut config = config_for(&database.url);
    config.platform.database.replicas = replicas
        .iter()
        .map(|name| NamedServer {
            name: name.clone(),
            url: url_with_database(&formation.node(name).url, database.name()),
        })
        .collect();
    config.platform.database.replica_check_ms = 200;
    tweak(&mut config);
    TestApp::spawn_with(database, config).await
}

async fn replica_states(app: &TestApp) -> Value {
    let ready: Value = app.get("/ready", None).await.json().await.unwrap();
    ready["replicas"].clone()
}

async fn wait_in_rotation(app: &TestApp, name: &str, wanted: bool) -> Duration {
    let started = Instant::now();
    eventually(&format!("{name} in rotation = {wanted}"), || async {
        let states = replica_states(app).await;
        (states[name]["in_rotation"] == json!(wanted)).then_some(())
    })
    .await;
    started.elapsed()
}

/// `db_reads_total` by host, from this process's metrics.
async fn reads_by_host(app: &TestApp) -> BTreeMap<String, f64> {
    let text = app.get("/metrics", None).await.text().await.unwrap();
    text.lines()
        .filter_map(|line| line.strip_prefix("db_reads_total{host=\""))
        .filter_map(|rest| {
            let (host, value) = rest.split_once("\"} ")?;
            Some((host.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

async fn post_text(app: &TestApp, id: &str, token: Option<&str>) -> String {
    let response = app.get(&format!("/post/get/{id}"), token).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    body["text"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn reads_spread_over_the_replicas_and_a_paused_replica_leaves_rotation_until_resumed() {
    let _turn = FORMATION.lock().await;
    let formation = formation();
    formation.heal().await;
    let (_, standbys) = formation.roles().await;
    let all: Vec<String> = formation.nodes.iter().map(|n| n.name.clone()).collect();
    let app = app_on_formation(&formation, &all, |config| {
        config.platform.database.replica_max_lag_ms = 1_000;
    })
    .await;
    for standby in &standbys {
        wait_in_rotation(&app, standby, true).await;
    }
    let (id, token) = app.user("Rita", "Replica").await;

    let before = reads_by_host(&app).await;
    for _ in 0..20 {
        let response = app.get(&format!("/user/get/{id}"), None).await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    let after = reads_by_host(&app).await;
    for standby in &standbys {
        let served = after.get(standby).unwrap_or(&0.0) - before.get(standby).unwrap_or(&0.0);
        assert!(
            served >= 5.0,
            "{standby} served {served} of 20 reads: {after:?}"
        );
    }

    // Writes go on while one replica stands still: it falls behind, and leaves rotation once
    // its lag passes the limit (1 s here) at the next check.
    let paused_node = standbys[0].clone();
    let paused = pause_replay(&formation, &paused_node).await;
    let started = Instant::now();
    loop {
        app.post(&token, "while a replica stands still").await;
        if replica_states(&app).await[&paused_node]["in_rotation"] == json!(false) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the paused replica never left rotation"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let left_after = started.elapsed();
    let before = reads_by_host(&app).await;
    for _ in 0..10 {
        let response = app.get(&format!("/user/get/{id}"), None).await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    let after = reads_by_host(&app).await;
    assert_eq!(
        after.get(&paused_node),
        before.get(&paused_node),
        "a replica out of rotation still got reads"
    );

    drop(paused);
    let back_after = wait_in_rotation(&app, &paused_node, true).await;
    println!(
        "paused replica {paused_node}: out of rotation {:.2} s after the pause (lag limit 1 s, checks every 0.2 s), back {:.2} s after the resume",
        left_after.as_secs_f64(),
        back_after.as_secs_f64()
    );
    assert!(left_after < Duration::from_secs(5));
}

#[tokio::test]
async fn a_writer_reads_their_own_write_while_the_only_replica_is_paused() {
    let _turn = FORMATION.lock().await;
    let formation = formation();
    formation.heal().await;
    let (_, standbys) = formation.roles().await;
    let replica = standbys[0].clone();
    // Lag limits so loose that the paused replica stays in rotation: only read-your-writes
    // keeps the author away from it.
    let app = app_on_formation(&formation, std::slice::from_ref(&replica), |config| {
        config.platform.database.replica_max_lag_ms = 600_000;
        config.platform.database.replica_max_lag_bytes = 1 << 40;
        // The whole suite shares two cores: a check slowed down by it must not count as down.
        config.platform.database.replica_check_timeout_ms = 5_000;
    })
    .await;
    wait_in_rotation(&app, &replica, true).await;
    let (author, token) = app.user("Ada", "Author").await;
    let (_, reader) = app.user("Rob", "Reader").await;
    let replica_url = url_with_database(&formation.node(&replica).url, app.database.name());
    // The replica's keeper restarts its PostgreSQL when the monitor changes its state (a
    // neighbour test's faults can still echo), and a restart forgets the pause: such an
    // attempt proves nothing and is repeated.
    for attempt in 1..=3 {
        let post = app.post(&token, "first draft").await;
        eventually("the replica has the post", || async {
            let replica = connect(&replica_url).await.ok()?;
            let id: i64 = post.parse().unwrap();
            let row = replica
                .query_opt("SELECT 1 FROM posts WHERE id = $1", &[&id])
                .await
                .ok()?;
            row.map(|_| ())
        })
        .await;
        // Routing knows a replica's position from its last check: let one run after this
        // (the other user's registration, among others, is replayed by now).
        tokio::time::sleep(Duration::from_millis(600)).await;
        let started = replica_start_time(&replica_url).await;
        let paused = pause_replay(&formation, &replica).await;
        let response = app
            .put_json(
                "/post/update",
                json!({"id": post, "text": "final text"}),
                Some(&token),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        let served_before = reads_by_host(&app).await;
        let anonymous = post_text(&app, &post, None).await;
        let other_user = post_text(&app, &post, Some(&reader)).await;
        let author_view = post_text(&app, &post, Some(&token)).await;
        let served = reads_by_host(&app)
            .await
            .get(&replica)
            .copied()
            .unwrap_or(0.0)
            - served_before.get(&replica).copied().unwrap_or(0.0);
        if replica_start_time(&replica_url).await != started {
            println!("attempt {attempt}: the replica restarted under the test, again");
            continue;
        }
        assert_eq!(
            served,
            2.0,
            "the replica answered {served} of the two readers without a mark (anonymous saw {anonymous:?}, the other user {other_user:?}); {}; {:?}",
            replica_states(&app).await,
            reads_by_host(&app).await
        );
        // The replica serves, and has not seen the edit...
        assert_eq!(anonymous, "first draft");
        assert_eq!(other_user, "first draft");
        // ...but the author's reads wait for a server that has it.
        assert_eq!(author_view, "final text");
        // A post created now is absent on the replica: anyone finds it (the primary confirms
        // a miss).
        let fresh = app.post(&token, "written while replay stands still").await;
        assert_eq!(
            post_text(&app, &fresh, None).await,
            "written while replay stands still"
        );
        drop(paused);
        break;
    }
    let me = app.get(&format!("/user/get/{author}"), Some(&token)).await;
    assert_eq!(me.status(), StatusCode::OK);
}

#[tokio::test]
async fn with_every_replica_stopped_reads_come_from_the_primary() {
    let _turn = FORMATION.lock().await;
    let formation = formation();
    formation.heal().await;
    let (_, standbys) = formation.roles().await;
    let app = app_on_formation(&formation, &standbys, |_| {}).await;
    for standby in &standbys {
        wait_in_rotation(&app, standby, true).await;
    }
    let (id, token) = app.user("Stan", "Standalone").await;
    let post = app.post(&token, "read me without replicas").await;
    let (_, friend_token) = app.user("Fay", "Friend").await;
    app.put(&format!("/friend/set/{id}"), Some(&friend_token))
        .await;

    let mut killed = Vec::new();
    for standby in &standbys {
        killed.push(formation.kill(standby).await);
    }
    let mut statuses = BTreeMap::new();
    for round in 0..20 {
        for path in [
            format!("/user/get/{id}"),
            "/user/search?first_name=St&last_name=Sta".to_owned(),
            format!("/post/get/{post}"),
            format!("/post/feed?offset={}&limit=10", round % 3),
        ] {
            let status = app.get(&path, Some(&friend_token)).await.status();
            *statuses.entry(status.as_u16()).or_insert(0) += 1;
        }
    }
    println!("reads with every replica stopped: {statuses:?}");
    // The reads above already went through the fallback to the primary; the health checks take
    // the dead replicas out of rotation within a few probes (under CI's load the reads can
    // finish first). What /ready says is collected before the replicas come back, and judged
    // after: a failed assertion must not leave the formation without its standbys, since
    // synchronous commit would then hang every later test on it.
    let expected = json!("no replica in rotation: every read goes to the primary");
    let mut ready_seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let ready = app.get("/ready", None).await;
        let status = ready.status();
        let body: Value = ready.json().await.unwrap_or(Value::Null);
        let done = status == StatusCode::OK && body["checks"]["replicas"] == expected;
        ready_seen.push((status, body));
        if done || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    for node in killed {
        node.start().await;
    }
    formation.wait_settled(Duration::from_secs(90)).await;
    for standby in &standbys {
        wait_in_rotation(&app, standby, true).await;
    }

    assert_eq!(statuses.keys().copied().collect::<Vec<_>>(), vec![200]);
    assert!(
        ready_seen
            .iter()
            .all(|(status, _)| *status == StatusCode::OK),
        "/ready was not 200 all along: {ready_seen:?}"
    );
    let (_, last) = ready_seen.last().expect("/ready was asked");
    assert_eq!(last["status"], json!("ready"));
    assert_eq!(last["checks"]["replicas"], expected, "{ready_seen:?}");
}

/// A write's outcome as the client saw it.
#[derive(Default)]
struct History {
    acknowledged: Vec<String>,
    /// Connection lost or 5004: it may or may not have been saved.
    unknown: Vec<String>,
    /// Refused before saving (503 while the primary was away).
    refused: usize,
    /// Anything else: must stay empty (a 500 would be a bug).
    unexpected: Vec<(u16, String)>,
    /// When each acknowledgement arrived.
    acknowledged_at: Vec<Instant>,
    /// How long each answered request took.
    latencies: Vec<Duration>,
    /// Requests that got no answer within the client's 10 s.
    no_answer: usize,
}

/// Writers posting uniquely numbered texts (`{tag} {writer}-{n}`) until `stop` is set.
async fn write_load(
    app: &TestApp,
    tag: &str,
    writers: usize,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<History> {
    let mut tokens = Vec::new();
    for writer in 0..writers {
        tokens.push(app.user("Wendy", &format!("Writer{writer}")).await.1);
    }
    let url = app.url("/post/create");
    let tag = tag.to_owned();
    tokio::spawn(async move {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for (writer, token) in tokens.into_iter().enumerate() {
            let (client, url, tag, stop) = (client.clone(), url.clone(), tag.clone(), stop.clone());
            tasks.spawn(async move {
                let mut history = History::default();
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let text = format!("{tag} {writer}-{n}");
                    let started = Instant::now();
                    let sent = client
                        .post(&url)
                        .bearer_auth(&token)
                        .json(&json!({"text": text}))
                        .send()
                        .await;
                    if sent.is_ok() {
                        history.latencies.push(started.elapsed());
                    }
                    match sent {
                        Ok(response) if response.status() == StatusCode::OK => {
                            history.acknowledged.push(text);
                            history.acknowledged_at.push(Instant::now());
                        }
                        Ok(response) if response.status() == StatusCode::SERVICE_UNAVAILABLE => {
                            let body: Value = response.json().await.unwrap_or_default();
                            if body["code"] == json!(5004) {
                                history.unknown.push(text);
                            } else {
                                history.refused += 1;
                            }
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        Ok(response) => {
                            let status = response.status().as_u16();
                            let body = response.text().await.unwrap_or_default();
                            history.unexpected.push((status, body));
                        }
                        Err(_) => {
                            history.unknown.push(text);
                            history.no_answer += 1;
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
                history
            });
        }
        let mut all = History::default();
        while let Some(history) = tasks.join_next().await {
            let history = history.unwrap();
            all.acknowledged.extend(history.acknowledged);
            all.unknown.extend(history.unknown);
            all.refused += history.refused;
            all.unexpected.extend(history.unexpected);
            all.acknowledged_at.extend(history.acknowledged_at);
            all.latencies.extend(history.latencies);
            all.no_answer += history.no_answer;
        }
        all
    })
}

/// The texts tagged `tag` stored on `url`'s server.
async fn stored_texts(url: &str, tag: &str) -> HashSet<String> {
    let client = connect(url).await.unwrap();
    client
        .query(
            "SELECT text FROM posts WHERE text LIKE $1",
            &[&format!("{tag} %")],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

fn missing<'a>(acknowledged: &'a [String], stored: &HashSet<String>) -> Vec<&'a String> {
    acknowledged
        .iter()
        .filter(|text| !stored.contains(*text))
        .collect()
}

#[tokio::test]
async fn killing_a_synchronous_replica_loses_no_acknowledged_write() {
    let _turn = FORMATION.lock().await;
    let formation = formation();
    formation.heal().await;
    let (primary, standbys) = formation.roles().await;
    let names = connect(&formation.node(&primary).url)
        .await
        .unwrap()
        .query_one("SHOW synchronous_standby_names", &[])
        .await
        .unwrap()
        .get::<_, String>(0);
    assert!(names.starts_with("ANY 1"), "not in quorum mode: {names:?}");
    let app = app_on_formation(&formation, &[], |_| {}).await;
    let database = app.database.name().to_owned();

    let stop = Arc::new(AtomicBool::new(false));
    let load = write_load(&app, "replica-kill", 4, stop.clone()).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (killed, survivor) = (&standbys[0], &standbys[1]);
    let killed_node = formation.kill(killed).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let history = load.await.unwrap();

    let on_primary = stored_texts(
        &url_with_database(&formation.node(&primary).url, &database),
        "replica-kill",
    )
    .await;
    let survivor_url = url_with_database(&formation.node(survivor).url, &database);
    let on_survivor = eventually("the surviving replica has every acknowledged write", || {
        let (url, history) = (&survivor_url, &history);
        async move {
            let stored = stored_texts(url, "replica-kill").await;
            missing(&history.acknowledged, &stored)
                .is_empty()
                .then_some(stored)
        }
    })
    .await;
    let lost = missing(&history.acknowledged, &on_primary);
    println!(
        "replica kill ({killed} killed, quorum ANY 1): acknowledged {}, on the primary {}, on the surviving replica {} of them, lost {}, unknown {}, refused {}",
        history.acknowledged.len(),
        history.acknowledged.len() - lost.len(),
        history.acknowledged.len() - missing(&history.acknowledged, &on_survivor).len(),
        lost.len(),
        history.unknown.len(),
        history.refused
    );
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    assert!(history.unexpected.is_empty(), "{:?}", history.unexpected);
    assert!(history.acknowledged.len() > 20);

    killed_node.start().await;
    formation.wait_settled(Duration::from_secs(90)).await;
}

#[tokio::test]
async fn failover_under_writes_loses_no_acknowledged_write() {
    let _turn = FORMATION.lock().await;
    let formation = formation();
    formation.heal().await;
    let (old_primary, _) = formation.roles().await;
    let app = app_on_formation(&formation, &[], |_| {}).await;
    let database = app.database.name().to_owned();

    let stop = Arc::new(AtomicBool::new(false));
    let probe = app.user("Paula", "Probe").await.1;
    let load = write_load(&app, "failover", 4, stop.clone()).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let killed_at = Instant::now();
    let killed_node = formation.kill(&old_primary).await;
    // Writes go on until they have succeeded for 2 s on the new primary (or 60 s pass).
    let resumed_at = loop {
        let response = app
            .post_json(
                "/post/create",
                json!({"text": "probe after the failover"}),
                Some(&probe),
            )
            .await;
        if response.status() == StatusCode::OK {
            break Instant::now();
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(60),
            "writes did not resume within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let history = load.await.unwrap();
    let (new_primary, _) = formation.roles().await;
    assert_ne!(new_primary, old_primary, "no failover happened");

    let stored = stored_texts(
        &url_with_database(&formation.node(&new_primary).url, &database),
        "failover",
    )
    .await;
    let lost = missing(&history.acknowledged, &stored);
    let unknown_saved = history
        .unknown
        .iter()
        .filter(|text| stored.contains(*text))
        .count();
    let acknowledged_after_kill = history
        .acknowledged_at
        .iter()
        .filter(|at| **at > resumed_at)
        .count();
    println!(
        "failover ({old_primary} killed, {new_primary} promoted): writes resumed {:.1} s after the kill; acknowledged {} ({} after the failover), found on the new primary {}, lost {}, unknown {} ({} of them saved), refused {}",
        (resumed_at - killed_at).as_secs_f64(),
        history.acknowledged.len(),
        acknowledged_after_kill,
        history.acknowledged.len() - lost.len(),
        lost.len(),
        history.unknown.len(),
        unknown_saved,
        history.refused
    );
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    assert!(history.unexpected.is_empty(), "{:?}", history.unexpected);
    assert!(
        acknowledged_after_kill > 0,
        "no write succeeded after the failover"
    );

    // The old primary comes back as a replica of the new one.
    killed_node.start().await;
    let rejoined = formation.wait_settled(Duration::from_secs(90)).await;
    let (primary, standbys) = formation.roles().await;
    assert_eq!(primary, new_primary);
    assert!(standbys.contains(&old_primary));
    println!(
        "{old_primary} rejoined as a replica {:.1} s after its restart",
        rejoined.as_secs_f64()
    );
}

/// After a quiet spell, a replica that has not replayed the first write yet is behind by the
/// time since that write, not by the quiet spell: it stays in rotation until the lag limit
/// really passes. Replay is paused on one replica so the first write stays unreplayed there.
#[tokio::test]
async fn an_idle_primary_does_not_make_its_replicas_look_behind() {
    let _turn = FORMATION.lock().await;
    let formation = formation();
    formation.heal().await;
    let (_, standbys) = formation.roles().await;
    let app = app_on_formation(&formation, &standbys, |config| {
        config.platform.database.replica_max_lag_ms = 1_000;
    })
    .await;
    let (_, token) = app.user("Ида", "Простоева").await;
    for name in &standbys {
        wait_in_rotation(&app, name, true).await;
    }
    // Three times the lag limit without a write on this database.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let held = &standbys[0];
    let paused = pause_replay(&formation, held).await;
    let written = Instant::now();
    app.post(&token, "after the quiet").await;
    // Checks run every 200 ms: for the next 0.6 s, well inside the 1 s limit, the replica is
    // behind by less than the limit and stays in rotation.
    let mut left = Vec::new();
    while written.elapsed() < Duration::from_millis(600) {
        let states = replica_states(&app).await;
        if states[held]["in_rotation"] != json!(true) {
            left.push(format!(
                "{:.2} s: {}",
                written.elapsed().as_secs_f64(),
                states[held]
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Lag that is real still counts: it leaves once it is behind for longer than the limit.
    wait_in_rotation(&app, held, false).await;
    let left_at = written.elapsed();
    drop(paused);
    wait_in_rotation(&app, held, true).await;
    println!(
        "after 3 s idle, replica {held} with replay paused: left rotation {:.2} s after the \
         write (limit 1 s); early exits: {left:?}",
        left_at.as_secs_f64()
    );
    assert!(left_at >= Duration::from_secs(1), "left before the limit");
    assert!(left.is_empty(), "the quiet spell counted as lag: {left:?}");
}

/// Both replicas die under writers: a commit can no longer be confirmed by any replica.
/// Nothing hangs: every write is answered within the deadline (200, or 503 with 5004 "may or
/// may not have been saved", or 503 refused), `/ready` says commits are not confirmed, and no
/// acknowledged write is lost. When the replicas return, writes are acknowledged again.
#[tokio::test]
async fn with_both_replicas_down_writes_answer_within_the_deadline() {
    let _turn = FORMATION.lock().await;
    let formation = formation();
    formation.heal().await;
    let (primary, standbys) = formation.roles().await;
    let app = app_on_formation(&formation, &[], |config| {
        config.platform.database.statement_timeout_ms = 2_000;
    })
    .await;
    let database = app.database.name().to_owned();
    let stop = Arc::new(AtomicBool::new(false));
    let load = write_load(&app, "both-down", 4, stop.clone()).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let killed_at = Instant::now();
    let first = formation.kill(&standbys[0]).await;
    let second = formation.kill(&standbys[1]).await;
    let mut commits_reported = false;
    while killed_at.elapsed() < Duration::from_secs(8) {
        let ready: Value = app.get("/ready", None).await.json().await.unwrap();
        commits_reported |= ready["checks"]["postgres_commits"] != json!("ok")
            && !ready["checks"]["postgres_commits"].is_null();
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    first.start().await;
    second.start().await;
    formation.wait_settled(Duration::from_secs(90)).await;
    let (_, probe) = app.user("Петра", "Проба").await;
    eventually("writes acknowledged again", || async {
        let response = app
            .post_json("/post/create", json!({"text": "probe"}), Some(&probe))
            .await;
        (response.status() == StatusCode::OK).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let mut history = load.await.unwrap();

    let stored = stored_texts(
        &url_with_database(&formation.node(&primary).url, &database),
        "both-down",
    )
    .await;
    let lost = missing(&history.acknowledged, &stored);
    history.latencies.sort();
    let p99 = history.latencies[history.latencies.len() * 99 / 100];
    let slowest = *history.latencies.last().unwrap();
    println!(
        "both replicas down for 8 s under 4 writers: acknowledged {}, unknown (5004) {}, refused {}, \
         no answer {}, p99 {:.0} ms, slowest {:.0} ms, lost {}; /ready reported commits: {commits_reported}",
        history.acknowledged.len(),
        history.unknown.len(),
        history.refused,
        history.no_answer,
        p99.as_secs_f64() * 1e3,
        slowest.as_secs_f64() * 1e3,
        lost.len()
    );
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    assert!(history.unexpected.is_empty(), "{:?}", history.unexpected);
    assert_eq!(history.no_answer, 0, "writes hung without an answer");
    // The deadline, its cancel, and the machine's noise.
    assert!(
        slowest < Duration::from_secs(8),
        "a write waited {slowest:?}"
    );
}
