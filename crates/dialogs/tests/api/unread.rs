//! Unread counters: kept by each send and read, restored from the outbox when an update is
//! lost, and rebuilt exactly from the shards after Redis loses everything.

use reqwest::StatusCode;
use serde_json::Value;

use crate::common::{DialogsApp, eventually};

#[tokio::test]
async fn counters_follow_sends_and_reads() {
    let app = DialogsApp::spawn(16).await;
    let (alice, alice_token) = app.user("Алиса").await;
    let (bob, bob_token) = app.user("Боб").await;
    let (carol, carol_token) = app.user("Кэрол").await;
    for text in ["1", "2", "3"] {
        app.send_ok(&alice_token, bob, text).await;
    }
    for text in ["a", "b"] {
        app.send_ok(&carol_token, bob, text).await;
    }
    let (total, dialogs) = app.unread(&bob_token).await;
    assert_eq!(total, 5);
    assert_eq!(dialogs[&alice.to_string()], 3);
    assert_eq!(dialogs[&carol.to_string()], 2);
    assert_eq!(
        app.unread(&alice_token).await.0,
        0,
        "your own messages are not unread"
    );

    // Reading a dialog marks it read.
    assert_eq!(
        app.list(&bob_token, alice, "").await.status(),
        StatusCode::OK
    );
    let (total, dialogs) = app.unread(&bob_token).await;
    assert_eq!(total, 2);
    assert!(!dialogs.contains_key(&alice.to_string()));
    // The dialog list carries each dialog's count.
    let list: Vec<Value> = app
        .client
        .get(app.url("/dialogs"))
        .bearer_auth(&bob_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let unread_of = |user: &str| {
        list.iter()
            .find(|d| d["user_id"] == user)
            .map(|d| d["unread"].as_i64().unwrap())
    };
    assert_eq!(unread_of(&alice.to_string()), Some(0));
    assert_eq!(unread_of(&carol.to_string()), Some(2));
    // And marking read explicitly.
    let response = app
        .client
        .post(app.url(&format!("/dialog/{carol}/read")))
        .bearer_auth(&bob_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(app.unread(&bob_token).await.0, 0);
}

#[tokio::test]
async fn a_counter_update_lost_after_the_send_comes_back_from_the_outbox() {
    let app = DialogsApp::spawn(16).await;
    let (_, alice_token) = app.user("Алиса").await;
    let (bob, bob_token) = app.user("Боб").await;
    app.send_ok(&alice_token, bob, "lost in Redis").await;
    // As if the increment never reached Redis.
    app.flush_dialog_keys().await;
    assert_eq!(app.unread(&bob_token).await.0, 0);
    eventually("the outbox sweeper applies the increment", || async {
        (app.unread(&bob_token).await.0 == 1).then_some(())
    })
    .await;
    eventually("the outbox is emptied", || async {
        (app.outbox_rows().await == 0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn after_redis_loses_everything_the_repair_brings_every_counter_back_exact() {
    let app = DialogsApp::spawn(16).await;
    let mut users = Vec::new();
    for at in 0..6 {
        users.push(app.user(&format!("Пользователь {at}")).await);
    }
    // Everyone writes to everyone a different number of times; some read part-way.
    for (i, (_, token)) in users.iter().enumerate() {
        for (j, (to, _)) in users.iter().enumerate() {
            if i != j {
                for n in 0..(i + j) % 4 + 1 {
                    app.send_ok(token, *to, &format!("{i}->{j} #{n}")).await;
                }
            }
        }
        if i % 2 == 0 {
            let (other, _) = users[(i + 1) % 6];
            app.list(token, other, "").await;
            app.send_ok(&users[(i + 1) % 6].1, users[i].0, "after the read")
                .await;
        }
    }
    let mut before = Vec::new();
    for (_, token) in &users {
        before.push(app.unread(token).await);
    }
    assert!(before.iter().any(|(total, _)| *total > 0));
    eventually("the outbox is swept", || async {
        (app.outbox_rows().await == 0).then_some(())
    })
    .await;

    app.flush_dialog_keys().await;
    for (_, token) in &users {
        assert_eq!(app.unread(token).await.0, 0, "Redis lost the counters");
    }
    let sides = app.repair_unread().await;
    assert_eq!(sides, 6 * 5, "every side of every dialog");
    for ((_, token), expected) in users.iter().zip(&before) {
        assert_eq!(&app.unread(token).await, expected);
    }
}
