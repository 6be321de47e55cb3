//! Correct under races: who gets a post depends on commit order, not on when the worker gets
//! to it; a signed-out session's sockets close on every instance; an edit is never undone by a
//! reader that loaded the text before it.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::common::{LiveSocket, TestApp, assert_no_live_post, config_for, eventually};

const ROUNDS: usize = 50;

async fn friend(app: &TestApp, token: &str, friend: &str, set: bool) {
    let path = if set { "set" } else { "delete" };
    let response = app
        .put(&format!("/friend/{path}/{friend}"), Some(token))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
}

/// Texts of the posts that arrive on `socket` until `deadline` or until `wanted` arrived.
async fn collect(socket: &mut LiveSocket, wanted: usize, deadline: Instant) -> Vec<String> {
    let mut texts = Vec::new();
    let until = tokio::time::Instant::from_std(deadline);
    while texts.len() < wanted {
        match tokio::time::timeout_at(until, socket.next()).await {
            Err(_) => break,
            Ok(Some(Ok(Message::Text(text)))) => {
                let body: Value = serde_json::from_str(&text).unwrap();
                texts.push(body["postText"].as_str().unwrap().to_owned());
            }
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
            Ok(other) => panic!("expected posts, got {other:?}"),
        }
    }
    texts
}

/// B holds `sockets` live sockets. Each round B befriends A, A posts, B unfriends A right after
/// the post's 200, and A posts again. Every first post was made while they were friends and
/// must arrive on every socket; no second post may arrive anywhere.
async fn unfriend_right_after_a_post(sockets: usize) {
    let app = TestApp::spawn_with_worker().await;
    let (author, author_token) = app.user("Автор", "Гонок").await;
    let (_, reader_token) = app.user("Читатель", "Гонок").await;
    let mut live = Vec::new();
    for _ in 0..sockets {
        live.push(app.live(&reader_token, None).await);
    }
    let mut expected = HashSet::new();
    for round in 0..ROUNDS {
        friend(&app, &reader_token, &author, true).await;
        let during = format!("while friends {round}");
        app.post(&author_token, &during).await;
        friend(&app, &reader_token, &author, false).await;
        app.post(&author_token, &format!("after the unfriend {round}"))
            .await;
        expected.insert(during);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut misses, mut wrong) = (0, 0);
    for socket in &mut live {
        let texts = collect(socket, ROUNDS, deadline).await;
        let got: HashSet<String> = texts.iter().cloned().collect();
        misses += expected.difference(&got).count();
        wrong += texts
            .iter()
            .filter(|text| !expected.contains(*text))
            .count();
        // Nothing late either.
        let late = collect(socket, 1, Instant::now() + Duration::from_millis(500)).await;
        wrong += late.len();
    }
    println!(
        "{ROUNDS} rounds, {sockets} socket(s): {} deliveries expected, {misses} missed, {wrong} wrong",
        ROUNDS * sockets
    );
    assert_eq!((misses, wrong), (0, 0), "missed and wrong deliveries");
}

#[tokio::test]
async fn a_post_reaches_one_socket_though_the_reader_unfriends_right_after_it() {
    unfriend_right_after_a_post(1).await;
}

#[tokio::test]
async fn a_post_reaches_two_sockets_though_the_reader_unfriends_right_after_it() {
    unfriend_right_after_a_post(2).await;
}

#[tokio::test]
async fn an_unfriended_authors_posts_stay_out_of_the_feed() {
    let app = TestApp::spawn_with_worker().await;
    let (author, author_token) = app.user("Автор", "Ленты").await;
    let (_, reader_token) = app.user("Читатель", "Ленты").await;
    friend(&app, &reader_token, &author, true).await;
    let before = app.post(&author_token, "before").await;
    eventually("the post in the reader's feed", || async {
        (app.feed(&reader_token, 0, 10).await.len() == 1).then_some(())
    })
    .await;
    // Posts made while friends, unfriended at once: whenever the worker gets to them, the
    // feed (today's friends only) does not take them back.
    for n in 0..20 {
        app.post(&author_token, &format!("racing {n}")).await;
    }
    friend(&app, &reader_token, &author, false).await;
    assert!(app.feed(&reader_token, 0, 10).await.is_empty());
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let feed = app.feed(&reader_token, 0, 50).await;
    assert!(feed.is_empty(), "an old friend's posts came back: {feed:?}");
    // Friends again: the whole history is theirs to see.
    friend(&app, &reader_token, &author, true).await;
    let feed = app.feed(&reader_token, 0, 50).await;
    assert_eq!(feed.len(), 21);
    assert_eq!(feed.last().unwrap().0, before);
}

/// The close code a socket ends with, within `within`.
async fn closed_with(socket: &mut LiveSocket, within: Duration) -> Option<CloseCode> {
    let until = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(until, socket.next()).await {
            Err(_) => return None,
            Ok(Some(Ok(Message::Close(frame)))) => return frame.map(|frame| frame.code),
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_)) | None) => return None,
        }
    }
}

#[tokio::test]
async fn signing_out_closes_that_sessions_sockets_on_every_instance() {
    let app = TestApp::spawn().await;
    let other = app.spawn_instance().await;
    let (id, first) = app.user("Выход", "Отовсюду").await;
    let second = app.login(&id).await;
    let mut first_here = app.live(&first, None).await;
    let mut first_there = other.live(&first, None).await;
    let mut second_there = other.live(&second, None).await;

    let started = Instant::now();
    let response = app
        .post_json("/logout", serde_json::json!({}), Some(&first))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    for socket in [&mut first_here, &mut first_there] {
        let code = closed_with(socket, Duration::from_secs(2)).await;
        assert_eq!(
            code,
            Some(CloseCode::Policy),
            "a signed-out socket stays open"
        );
    }
    let elapsed = started.elapsed();
    println!("signed-out sockets on two instances closed {elapsed:?} after the logout");
    // The user's other session is not touched.
    assert_no_live_post(&mut second_there, 300).await;

    let response = app
        .post_json("/logout/all", serde_json::json!({}), Some(&second))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let code = closed_with(&mut second_there, Duration::from_secs(2)).await;
    assert_eq!(
        code,
        Some(CloseCode::Policy),
        "logout everywhere left a socket open"
    );
}

#[tokio::test]
async fn a_slow_reader_cannot_write_an_edited_post_back_as_it_was() {
    let database =
        agora_platform::testing::TestDatabase::create("social", agora_social::migrations).await;
    let mut config = config_for(&database.url);
    // Every body a feed read loads from PostgreSQL reaches Redis 1.5 s later.
    config.social.feed.test_writeback_delay_ms = 1_500;
    let app = TestApp::spawn_with(database, config).await;
    let (author, author_token) = app.user("Автор", "Правок").await;
    let (_, reader_token) = app.user("Читатель", "Правок").await;
    friend(&app, &reader_token, &author, true).await;
    let post = app.post(&author_token, "first draft").await;

    let slow_read = {
        let (client, url, token) = (
            app.client.clone(),
            app.url("/post/feed"),
            reader_token.clone(),
        );
        tokio::spawn(async move {
            client
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        })
    };
    // The edit commits while the reader holds the old text.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let response = app
        .put_json(
            "/post/update",
            serde_json::json!({"id": post, "text": "final text"}),
            Some(&author_token),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let first = slow_read.await.unwrap();
    assert!(first.contains("first draft"), "{first}");

    for _ in 0..2 {
        let feed = app.feed(&reader_token, 0, 10).await;
        assert_eq!(
            feed[0].1, "final text",
            "the old text came back from the cache"
        );
    }
}
