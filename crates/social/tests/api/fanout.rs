//! The feed worker end to end: outbox, relay, RabbitMQ, fan-out lanes, Redis.

use std::net::SocketAddr;

use lapin::options::BasicPublishOptions;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use reqwest::StatusCode;
use serde_json::json;

use crate::common::proxy::ChaosProxy;
use crate::common::{TestApp, amqp_url, eventually, worker_config_for};

fn ids(page: &[(String, String, String)]) -> Vec<String> {
    page.iter().map(|(id, _, _)| id.clone()).collect()
}

/// Users who follow `author`, each with a cached (read once) feed; returns their tokens.
async fn followers(app: &TestApp, author: &str, count: usize) -> Vec<String> {
    let mut tokens = Vec::new();
    for i in 0..count {
        let (_, token) = app.user("Подписчик", &format!("Номер{i}")).await;
        let response = app
            .put(&format!("/friend/set/{author}"), Some(&token))
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        app.feed(&token, 0, 10).await; // caches the feed: the user is active
        tokens.push(token);
    }
    tokens
}

async fn feed_has(app: &TestApp, token: &str, post: &str) -> bool {
    ids(&app.feed(token, 0, 100).await).contains(&post.to_owned())
}

async fn outbox_len(app: &TestApp) -> i64 {
    app.sql()
        .await
        .query_one("SELECT count(*) FROM feed_outbox", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn a_new_post_reaches_every_cached_follower_feed_through_the_bulk_lane() {
    let mut app = TestApp::spawn_configured(|config| {
        config.social.feed.fanout_batch = 2; // 5 followers: one inline batch, then two bulk-lane tasks
    })
    .await;
    app.start_worker(worker_config_for(&app, &amqp_url()));
    let (author, author_token) = app.user("Автор", "Веерный").await;
    let readers = followers(&app, &author, 5).await;
    let post = app.post(&author_token, "hello, followers").await;
    for reader in &readers {
        eventually("the post in a follower's feed", || async {
            feed_has(&app, reader, &post).await.then_some(())
        })
        .await;
    }
    assert_eq!(outbox_len(&app).await, 0, "the relay empties the outbox");
}

#[tokio::test]
async fn a_redelivered_event_never_duplicates_a_feed_entry() {
    let app = TestApp::spawn_with_worker().await;
    let (author, author_token) = app.user("Автор", "Повторный").await;
    let readers = followers(&app, &author, 1).await;
    let post = app.post(&author_token, "once").await;
    eventually("the post in the feed", || async {
        feed_has(&app, &readers[0], &post).await.then_some(())
    })
    .await;
    // The same event again, as the broker would redeliver it after a lost ack.
    let connection = Connection::connect(&amqp_url(), ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let event = json!({"outbox_id": 0, "kind": "post_created",
                       "actor_id": author.parse::<i64>().unwrap(),
                       "subject_id": post.parse::<i64>().unwrap()});
    for _ in 0..3 {
        channel
            .basic_publish(
                "".into(),
                format!("{}.feed.events", app.config.platform.namespace)
                    .as_str()
                    .into(),
                BasicPublishOptions::default(),
                &serde_json::to_vec(&event).unwrap(),
                BasicProperties::default(),
            )
            .await
            .unwrap();
    }
    // A later post is processed after the duplicates (one consumer, in order).
    let later = app.post(&author_token, "later").await;
    eventually("the later post", || async {
        feed_has(&app, &readers[0], &later).await.then_some(())
    })
    .await;
    assert_eq!(ids(&app.feed(&readers[0], 0, 100).await), vec![later, post]);
}

#[tokio::test]
async fn a_celebrity_is_merged_at_read_time_not_pushed() {
    let mut app = TestApp::spawn_configured(|config| {
        // The star gets 4 followers, the friend 3: one celebrity, one ordinary author.
        config.social.feed.celebrity_followers = 4;
    })
    .await;
    app.start_worker(worker_config_for(&app, &amqp_url()));
    let (star, star_token) = app.user("Звезда", "Знаменитая").await;
    let (friend, friend_token) = app.user("Друг", "Обычный").await;
    let readers = followers(&app, &star, 3).await;
    let (_, fan) = app.user("Поклонник", "Молчаливый").await;
    app.put(&format!("/friend/set/{star}"), Some(&fan)).await;
    for reader in &readers {
        app.put(&format!("/friend/set/{friend}"), Some(reader))
            .await;
    }
    // The star's first post makes it a known celebrity. Until the worker has classified it, a
    // feed rebuilt from the database (after a friend change dropped it) may still take the
    // star's posts in, so the post under test comes after.
    let warmup = app.post(&star_token, "warming up").await;
    let celebs_key = format!("{}celebs", app.config.platform.key_prefix());
    eventually("the star to be classified", || async {
        let mut redis = app.redis().await;
        let known: bool = redis::cmd("SISMEMBER")
            .arg(&celebs_key)
            .arg(&star)
            .query_async(&mut redis)
            .await
            .unwrap();
        known.then_some(())
    })
    .await;
    let marker = app.post(&friend_token, "marker").await;
    for reader in &readers {
        eventually("the marker", || async {
            feed_has(&app, reader, &marker).await.then_some(())
        })
        .await;
    }
    let hit = app.post(&star_token, "a hit").await;
    let ordinary = app.post(&friend_token, "ordinary").await;
    for reader in &readers {
        eventually("both posts in the feed", || async {
            let page = ids(&app.feed(reader, 0, 10).await);
            (page
                == vec![
                    ordinary.clone(),
                    hit.clone(),
                    marker.clone(),
                    warmup.clone(),
                ])
            .then_some(())
        })
        .await;
    }
    // The celebrity's post was merged at read time: no cached feed holds its id.
    let star_post = hit.parse::<i64>().unwrap().to_be_bytes();
    for feed in raw_feeds(&app, 3).await {
        let decoded: Vec<i64> = feed[1..]
            .chunks(8)
            .map(|c| i64::from_be_bytes(c.try_into().unwrap()))
            .collect();
        assert!(
            !feed.windows(8).any(|w| w == star_post),
            "a celebrity post was pushed: {decoded:?}, hit {hit}, ordinary {ordinary}, marker {marker}"
        );
    }
}

async fn raw_feeds(app: &TestApp, expected: usize) -> Vec<Vec<u8>> {
    let feeds = app.raw_feeds().await;
    assert!(feeds.len() >= expected);
    feeds
}

#[tokio::test]
async fn inactive_followers_get_no_push_and_catch_up_on_return() {
    let app = TestApp::spawn_with_worker().await;
    let (author, author_token) = app.user("Автор", "Активный").await;
    let active = followers(&app, &author, 1).await;
    let (sleeper_id, sleeper) = app.user("Соня", "Спящая").await;
    app.put(&format!("/friend/set/{author}"), Some(&sleeper))
        .await;
    let post = app.post(&author_token, "news").await;
    eventually("the post in the active feed", || async {
        feed_has(&app, &active[0], &post).await.then_some(())
    })
    .await;
    let mut redis = app.redis().await;
    let exists: bool = redis::cmd("EXISTS")
        .arg(format!(
            "{}feed:{sleeper_id}",
            app.config.platform.key_prefix()
        ))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(
        !exists,
        "nobody read the sleeper's feed, so nothing was pushed to it"
    );
    assert!(feed_has(&app, &sleeper, &post).await);
}

#[tokio::test]
async fn posts_made_while_the_broker_is_unreachable_arrive_when_it_returns() {
    let broker: SocketAddr = {
        let url = amqp_url();
        let authority = url
            .split('@')
            .nth(1)
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .to_owned();
        authority.parse().unwrap()
    };
    let proxy = ChaosProxy::start(broker).await;
    let mut app = TestApp::spawn().await;
    let proxied = amqp_url().replace(&broker.to_string(), &proxy.address.to_string());
    app.start_worker(worker_config_for(&app, &proxied));
    let (author, author_token) = app.user("Автор", "Терпеливый").await;
    let readers = followers(&app, &author, 2).await;
    let first = app.post(&author_token, "before the outage").await;
    eventually("the first post", || async {
        feed_has(&app, &readers[0], &first).await.then_some(())
    })
    .await;

    proxy.cut();
    let mut during = Vec::new();
    for i in 0..5 {
        // Writes keep succeeding: the outbox holds what the broker cannot take.
        during.push(
            app.post(&author_token, &format!("during the outage {i}"))
                .await,
        );
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(outbox_len(&app).await > 0, "nothing can have been relayed");
    proxy.restore();
    for reader in &readers {
        eventually("every post made during the outage", || async {
            let page = ids(&app.feed(reader, 0, 100).await);
            during.iter().all(|post| page.contains(post)).then_some(())
        })
        .await;
    }
    eventually("an empty outbox", || async {
        (outbox_len(&app).await == 0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_deleted_post_leaves_every_cached_feed() {
    let app = TestApp::spawn_with_worker().await;
    let (author, author_token) = app.user("Автор", "Передумавший").await;
    let readers = followers(&app, &author, 3).await;
    let post = app.post(&author_token, "regret").await;
    for reader in &readers {
        eventually("the post", || async {
            feed_has(&app, reader, &post).await.then_some(())
        })
        .await;
    }
    app.put(&format!("/post/delete/{post}"), Some(&author_token))
        .await;
    let post_bytes = post.parse::<i64>().unwrap().to_be_bytes();
    eventually("the id gone from every cached feed", || async {
        let feeds = raw_feeds(&app, 3).await;
        feeds
            .iter()
            .all(|feed| !feed.windows(8).any(|w| w == post_bytes))
            .then_some(())
    })
    .await;
    for reader in &readers {
        assert!(!feed_has(&app, reader, &post).await);
    }
}
