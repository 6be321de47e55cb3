//! UGC on the replicated formation, as `./dev up --replicated` runs it: its database lives
//! beside the main one on the pg_auto_failover formation (a primary and two replicas in quorum
//! commit), so losing the primary's machine loses no acknowledged rating.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use agora_platform::testing::formation::{FORMATION, connect, formation};
use agora_platform::testing::url_with_database;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::common::UgcApp;

/// A rating a writer sent: who, which film, which score.
type Rating = (i64, String, i64);

#[derive(Default)]
struct Outcomes {
    acknowledged: Vec<Rating>,
    /// 503s: refused while no primary was there, or of unknown outcome (code 5004).
    unavailable: usize,
    unknown: usize,
    unexpected: Vec<(u16, String)>,
}

#[tokio::test]
async fn ugc_survives_a_failover_without_losing_an_acknowledged_rating() {
    let _turn = FORMATION.lock().await;
    let formation = formation();
    formation.heal().await;
    let (old_primary, _) = formation.roles().await;
    let app = Arc::new(UgcApp::spawn_on_formation(&formation.primary).await);
    let database = app.ugc.name().to_owned();

    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = tokio::task::JoinSet::new();
    for writer in 0..4 {
        let (user_id, token) = app.user(&format!("Rater{writer}")).await;
        let user_id: i64 = user_id.parse().unwrap();
        let (app, stop) = (app.clone(), stop.clone());
        writers.spawn(async move {
            let mut outcomes = Outcomes::default();
            let mut n: u64 = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                // A film of its own for every rating, so each acknowledged one is a row to find.
                let film = format!("00000000-0000-4000-8000-{:04}{n:08}", writer);
                let score = (n % 11) as i64;
                let (status, body, _) = app
                    .call(
                        Method::PUT,
                        &format!("/ugc/films/{film}/rating"),
                        Some(&token),
                        Some(json!({"score": score})),
                    )
                    .await;
                match status {
                    StatusCode::OK => outcomes.acknowledged.push((user_id, film, score)),
                    StatusCode::SERVICE_UNAVAILABLE => {
                        if body["code"] == json!(5004) {
                            outcomes.unknown += 1;
                        } else {
                            outcomes.unavailable += 1;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    other => outcomes.unexpected.push((other.as_u16(), body.to_string())),
                }
            }
            outcomes
        });
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let killed_at = Instant::now();
    let killed = formation.kill(&old_primary).await;
    let (_, probe) = app.user("Probe").await;
    let resumed_after = loop {
        let (status, _, _) = app
            .call(
                Method::PUT,
                "/ugc/films/6f9619ff-8b86-d011-b42d-00c04fc964ff/rating",
                Some(&probe),
                Some(json!({"score": 5})),
            )
            .await;
        if status == StatusCode::OK {
            break killed_at.elapsed();
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(60),
            "UGC writes did not resume within 60 s of the primary's loss"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Outcomes::default();
    while let Some(outcomes) = writers.join_next().await {
        let outcomes = outcomes.unwrap();
        all.acknowledged.extend(outcomes.acknowledged);
        all.unavailable += outcomes.unavailable;
        all.unknown += outcomes.unknown;
        all.unexpected.extend(outcomes.unexpected);
    }
    let (new_primary, _) = formation.roles().await;
    assert_ne!(new_primary, old_primary, "no failover happened");

    let stored = connect(&url_with_database(
        &formation.node(&new_primary).url,
        &database,
    ))
    .await
    .unwrap();
    let rows = stored
        .query(
            "SELECT user_id, film_id::text, score::bigint FROM ratings",
            &[],
        )
        .await
        .unwrap();
    let kept: std::collections::HashSet<Rating> = rows
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect();
    let lost: Vec<&Rating> = all
        .acknowledged
        .iter()
        .filter(|rating| !kept.contains(*rating))
        .collect();
    // Every film's totals still agree with its ratings: the two are written in one transaction.
    let drifted: i64 = stored
        .query_one(
            "SELECT count(*) FROM film_ratings f
             WHERE f.votes <> (SELECT count(*) FROM ratings r WHERE r.film_id = f.film_id)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    println!(
        "UGC failover ({old_primary} killed, {new_primary} promoted): writes resumed {:.1} s after the kill; acknowledged {}, lost {}, unknown outcome (5004) {}, refused (503) {}, films with drifted totals {drifted}",
        resumed_after.as_secs_f64(),
        all.acknowledged.len(),
        lost.len(),
        all.unknown,
        all.unavailable
    );
    assert!(lost.is_empty(), "acknowledged ratings lost: {lost:?}");
    assert!(all.unexpected.is_empty(), "{:?}", all.unexpected);
    assert_eq!(drifted, 0, "film totals drifted from their ratings");
    assert!(all.acknowledged.len() > 20);

    killed.start().await;
    formation.wait_settled(Duration::from_secs(90)).await;
}
