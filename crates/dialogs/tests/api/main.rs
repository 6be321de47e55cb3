//! End-to-end tests of dialogs: the real service on port 0, a real main database and real
//! PostgreSQL shard servers of the test stack.

mod common;
mod reshard;
mod unread;

use std::collections::HashMap;

use agora_platform::ids::UserId;
use agora_platform::testing::proxy::ChaosProxy;
use reqwest::StatusCode;
use serde_json::Value;

use common::{DialogsApp, assert_error, connect, shard_database};

#[tokio::test]
async fn both_users_see_the_same_dialog_newest_first() {
    let app = DialogsApp::spawn(16).await;
    let (alice, alice_token) = app.user("Алиса").await;
    let (bob, bob_token) = app.user("Боб").await;
    let first = app.send_ok(&alice_token, bob, "Привет!").await;
    let second = app.send_ok(&bob_token, alice, "Привет, как дела?").await;
    let third = app.send_ok(&alice_token, bob, "Хорошо 🙂").await;
    let (first, second, third): (i64, i64, i64) = (
        first.parse().unwrap(),
        second.parse().unwrap(),
        third.parse().unwrap(),
    );
    assert!(first < second && second < third, "ids are time-ordered");

    for (token, with) in [(&alice_token, bob), (&bob_token, alice)] {
        let response = app.list(token, with, "").await;
        assert_eq!(response.status(), StatusCode::OK);
        let messages: Vec<Value> = response.json().await.unwrap();
        let seen: Vec<(String, String, String)> = messages
            .iter()
            .map(|m| {
                (
                    m["from"].as_str().unwrap().to_owned(),
                    m["to"].as_str().unwrap().to_owned(),
                    m["text"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let (a, b) = (alice.to_string(), bob.to_string());
        assert_eq!(
            seen,
            vec![
                (a.clone(), b.clone(), "Хорошо 🙂".to_owned()),
                (b.clone(), a.clone(), "Привет, как дела?".to_owned()),
                (a.clone(), b.clone(), "Привет!".to_owned()),
            ]
        );
    }
}

#[tokio::test]
async fn bad_requests_are_refused_with_a_message() {
    let app = DialogsApp::spawn(16).await;
    let (alice, alice_token) = app.user("Алиса").await;
    let (bob, _) = app.user("Боб").await;

    assert_error(
        app.send(&alice_token, alice, "me").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_error(
        app.send(&alice_token, UserId(987_654_321), "hi").await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_error(
        app.send(&alice_token, bob, "   ").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    let long = "я".repeat(app.config.max_text_chars as usize + 1);
    assert_error(
        app.send(&alice_token, bob, &long).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_error(
        app.send("not-a-token", bob, "hi").await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let response = app
        .client
        .post(app.url(&format!("/dialog/{bob}/send")))
        .json(&serde_json::json!({"text": "hi"}))
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::UNAUTHORIZED).await;
    let response = app
        .client
        .post(app.url("/dialog/0042/send"))
        .bearer_auth(&alice_token)
        .json(&serde_json::json!({"text": "hi"}))
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::BAD_REQUEST).await;
    for query in ["?limit=0", "?limit=1001", "?before=abc", "?unknown=1"] {
        assert_error(
            app.list(&alice_token, bob, query).await,
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
    assert_error(
        app.list(&alice_token, alice, "").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
}

#[tokio::test]
async fn a_dialog_lives_on_one_shard_server_and_dialogs_spread_over_both() {
    let app = DialogsApp::spawn(16).await;
    let (hub, hub_token) = app.user("Центр").await;
    for at in 0..24 {
        let (other, _) = app.user(&format!("Собеседник {at}")).await;
        app.send_ok(&hub_token, other, &format!("message {at}"))
            .await;
        app.send_ok(&hub_token, other, &format!("again {at}")).await;
    }
    let mut servers_of_dialog: HashMap<(i64, i64), Vec<usize>> = HashMap::new();
    for (server, database) in app.shards.iter().enumerate() {
        let shard = connect(&database.url).await;
        for row in shard
            .query("SELECT DISTINCT dialog_low, dialog_high FROM messages", &[])
            .await
            .unwrap()
        {
            servers_of_dialog
                .entry((row.get(0), row.get(1)))
                .or_default()
                .push(server);
        }
    }
    assert_eq!(servers_of_dialog.len(), 24);
    assert!(servers_of_dialog.values().all(|servers| servers.len() == 1));
    let on_first = servers_of_dialog.values().filter(|s| s[0] == 0).count();
    assert!(
        on_first > 0 && on_first < 24,
        "one user's dialogs spread over both servers ({on_first} of 24 on the first)"
    );
    let _ = hub;
}

#[tokio::test]
async fn a_dialog_pages_by_cursor_without_gaps_or_repeats() {
    let app = DialogsApp::spawn(16).await;
    let (alice, alice_token) = app.user("Алиса").await;
    let (bob, bob_token) = app.user("Боб").await;
    for at in 0..25 {
        let (token, to) = if at % 2 == 0 {
            (&alice_token, bob)
        } else {
            (&bob_token, alice)
        };
        app.send_ok(token, to, &format!("m{at}")).await;
    }
    let mut texts = Vec::new();
    let mut query = "?limit=10".to_owned();
    loop {
        let page: Vec<Value> = app
            .list(&alice_token, bob, &query)
            .await
            .json()
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 10);
        query = format!(
            "?limit=10&before={}",
            page.last().unwrap()["id"].as_str().unwrap()
        );
        texts.extend(page.iter().map(|m| m["text"].as_str().unwrap().to_owned()));
    }
    let expected: Vec<String> = (0..25).rev().map(|at| format!("m{at}")).collect();
    assert_eq!(texts, expected);
}

#[tokio::test]
async fn the_callers_dialogs_come_newest_first_with_their_last_message() {
    let app = DialogsApp::spawn(16).await;
    let (me, my_token) = app.user("Я").await;
    let mut others = Vec::new();
    for at in 0..5 {
        let (other, token) = app.user(&format!("Друг {at}")).await;
        app.send_ok(&token, me, &format!("from {at}")).await;
        others.push((other, token));
    }
    // The second friend writes again: their dialog is now the most recent.
    app.send_ok(&others[1].1, me, "again").await;
    let response = app
        .client
        .get(app.url("/dialogs"))
        .bearer_auth(&my_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let dialogs: Vec<Value> = response.json().await.unwrap();
    let order: Vec<String> = dialogs
        .iter()
        .map(|d| d["user_id"].as_str().unwrap().to_owned())
        .collect();
    let expected: Vec<String> = [1, 4, 3, 2, 0]
        .iter()
        .map(|at| others[*at].0.to_string())
        .collect();
    assert_eq!(order, expected);
    assert_eq!(dialogs[0]["last_message"]["text"], "again");
    assert_eq!(dialogs[0]["last_message"]["to"], me.to_string());
}

#[tokio::test]
async fn a_shard_server_that_is_down_fails_only_its_own_dialogs_and_comes_back() {
    let healthy = shard_database(0).await;
    let flaky = shard_database(1).await;
    let flaky_address = {
        let config: tokio_postgres::Config = flaky.url.parse().unwrap();
        let tokio_postgres::config::Host::Tcp(host) = &config.get_hosts()[0] else {
            panic!("a TCP shard server")
        };
        format!("{host}:{}", config.get_ports()[0]).parse().unwrap()
    };
    let proxy = ChaosProxy::start(flaky_address).await;
    let proxied_url = flaky
        .url
        .replacen(&flaky_address.to_string(), &proxy.address.to_string(), 1);
    let servers = vec![
        agora_dialogs::config::ShardServer {
            name: "shard1".into(),
            url: healthy.url.clone(),
        },
        agora_dialogs::config::ShardServer {
            name: "shard2".into(),
            url: proxied_url,
        },
    ];
    let app = DialogsApp::spawn_on(vec![healthy, flaky], servers, 16).await;
    let (me, token) = app.user("Я").await;
    let mut others = Vec::new();
    for at in 0..12 {
        others.push(app.user(&format!("Друг {at}")).await.0);
    }
    proxy.cut();
    let mut unavailable = 0;
    let mut served = 0;
    for other in &others {
        let response = app.send(&token, *other, "while a server is down").await;
        match response.status() {
            StatusCode::OK => served += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(response.headers()["retry-after"], "1");
                assert_error(response, StatusCode::SERVICE_UNAVAILABLE).await;
                unavailable += 1;
            }
            status => panic!("unexpected {status}"),
        }
    }
    assert!(
        served > 0 && unavailable > 0,
        "served {served}, unavailable {unavailable}"
    );
    proxy.restore();
    common::eventually("the server's dialogs work again", || async {
        let mut all = true;
        for other in &others {
            all &= app.send(&token, *other, "after").await.status() == StatusCode::OK;
        }
        all.then_some(())
    })
    .await;
    let _ = me;
}

#[tokio::test]
async fn a_process_without_dialogs_forwards_them_with_the_request_id() {
    let app = DialogsApp::spawn(16).await;
    let (alice, alice_token) = app.user("Алиса").await;
    let (bob, bob_token) = app.user("Боб").await;
    let forward = agora_platform::forward::router(
        &agora_dialogs::http::PATHS,
        &format!("http://{}", app.address),
        "dialogs",
        std::time::Duration::from_secs(5),
    )
    .unwrap();
    let service = agora_platform::service::Service::new(
        "forward",
        forward,
        agora_platform::http::OpsEndpoints::default(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let front = listener.local_addr().unwrap();
    let http = agora_platform::config::HttpConfig::for_listen(front);
    tokio::spawn(async move {
        agora_platform::service::run(vec![service], listener, &http, std::future::pending()).await
    });
    let client = reqwest::Client::new();
    let response = client
        .post(format!("http://{front}/dialog/{bob}/send"))
        .bearer_auth(&alice_token)
        .json(&serde_json::json!({"text": "через прокси"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let messages: Vec<Value> = client
        .get(format!("http://{front}/dialog/{alice}/list"))
        .bearer_auth(&bob_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(messages[0]["text"], "через прокси");
    // An error rendered by the dialogs process carries the id the client sent to the front.
    let response = client
        .post(format!("http://{front}/dialog/{alice}/send"))
        .bearer_auth(&alice_token)
        .header("x-request-id", "forwarded-42")
        .json(&serde_json::json!({"text": "to myself"}))
        .send()
        .await
        .unwrap();
    let body = assert_error(response, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["request_id"], "forwarded-42");
    // Without a dialogs process behind it: 503, not a hang.
    drop(app);
    let response = client
        .get(format!("http://{front}/dialogs"))
        .bearer_auth(&alice_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
}
