//! The live feed `/post/feed/posted` with two server instances, a worker and real RabbitMQ.

use std::time::Duration;

use agora_platform::amqp::{self, AmqpConfig};
use agora_platform::testing::TestDatabase;
use futures_util::StreamExt;
use lapin::options::{BasicGetOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use reqwest::StatusCode;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::common::{
    TestApp, amqp_url, assert_error, assert_no_live_post, config_for, eventually, live_request,
    next_live_post, worker_config_for,
};

async fn befriend(app: &TestApp, token: &str, friend: &str) {
    let response = app.put(&format!("/friend/set/{friend}"), Some(token)).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_handshake_needs_a_valid_token() {
    let app = TestApp::spawn().await;
    for token in [None, Some("not-a-token")] {
        let error = tokio_tungstenite::connect_async(live_request(app.address, token, None))
            .await
            .expect_err("no upgrade without a valid token");
        match error {
            tokio_tungstenite::tungstenite::Error::Http(response) => {
                assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
            }
            other => panic!("expected an HTTP 401, got {other}"),
        }
    }
    let (_, token) = app.user("Без", "Апгрейда").await;
    // A plain GET with a token is told what the endpoint speaks.
    assert_error(
        app.get("/post/feed/posted", Some(&token)).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    let response = tokio_tungstenite::connect_async(live_request(
        app.address,
        Some(&token),
        Some("not-an-id"),
    ))
    .await;
    assert!(
        matches!(response, Err(tokio_tungstenite::tungstenite::Error::Http(r)) if r.status() == StatusCode::BAD_REQUEST)
    );
}

/// A fake server instance made of a queue and a presence record, to see what the worker sends
/// an instance.
struct SpyInstance {
    channel: lapin::Channel,
    queue: String,
    _connection: lapin::Connection,
}

impl SpyInstance {
    async fn start(app: &TestApp, online: &[&str]) -> Self {
        let namespace = &app.config.platform.namespace;
        let queue = agora_social::live::instance_queue(namespace, "spy");
        let connection = amqp::connect(&AmqpConfig::for_url(amqp_url()), "spy")
            .await
            .unwrap();
        let channel = connection.create_channel().await.unwrap();
        let mut arguments = FieldTable::default();
        arguments.insert(
            "x-expires".into(),
            lapin::types::AMQPValue::LongUInt(60_000),
        );
        channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions::default(),
                arguments,
            )
            .await
            .unwrap();
        let spy = Self {
            channel,
            queue,
            _connection: connection,
        };
        for user in online {
            spy.join(app, user).await;
        }
        spy
    }

    async fn join(&self, app: &TestApp, user: &str) {
        let redis = agora_platform::cache::Redis::new(&app.config.platform.redis).unwrap();
        let presence = agora_social::live::Presence::new(redis, &app.config.platform.key_prefix());
        let join = agora_social::live::presence::Change::Join(user.parse().unwrap());
        presence.apply("spy", &[join]).await.unwrap();
    }

    /// The messages queued for the spy so far.
    async fn messages(&self) -> Vec<Value> {
        let mut messages = Vec::new();
        while let Some(message) = self
            .channel
            .basic_get(self.queue.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
        {
            messages.push(serde_json::from_slice(&message.delivery.data).unwrap());
        }
        messages
    }
}

#[tokio::test]
async fn posts_reach_friends_on_their_own_instance_only() {
    let app = TestApp::spawn_with_worker().await;
    let other = app.spawn_instance().await;
    let (author, author_token) = app.user("Автор", "Живой").await;
    let (_, here_token) = app.user("Читатель", "Здешний").await;
    let (_, there_token) = app.user("Читатель", "Тамошний").await;
    let (stranger, stranger_token) = app.user("Чужой", "Посторонний").await;
    befriend(&app, &here_token, &author).await;
    befriend(&app, &there_token, &author).await;
    // The spy holds only the stranger, who does not follow the author.
    let spy = SpyInstance::start(&app, &[&stranger]).await;

    let mut here = app.live(&here_token, None).await;
    let mut here_too = app.live(&here_token, None).await;
    let mut there = other.live(&there_token, None).await;
    let mut stranger_socket = app.live(&stranger_token, None).await;

    let post = app.post(&author_token, "в прямом эфире").await;
    let expected = (post.clone(), "в прямом эфире".to_owned(), author.clone());
    assert_eq!(next_live_post(&mut here).await, expected);
    assert_eq!(next_live_post(&mut here_too).await, expected);
    assert_eq!(next_live_post(&mut there).await, expected);
    assert_no_live_post(&mut stranger_socket, 300).await;

    // Once a follower is online on the spy, it gets one message naming just that follower.
    // Events are handled in order, so when that message is there, any message for the first
    // post would be there too.
    let (follower, follower_token) = app.user("Подписчик", "Шпионский").await;
    befriend(&app, &follower_token, &author).await;
    spy.join(&app, &follower).await;
    let second = app.post(&author_token, "второй").await;
    assert_eq!(next_live_post(&mut there).await.0, second);
    let mut messages = eventually("the spy's message", || async {
        let messages = spy.messages().await;
        (!messages.is_empty()).then_some(messages)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    messages.extend(spy.messages().await);
    assert_eq!(
        messages.len(),
        1,
        "one message, for the second post only: {messages:?}"
    );
    assert_eq!(messages[0]["post_id"].as_i64().unwrap().to_string(), second);
    assert_eq!(
        messages[0]["recipients"],
        serde_json::json!([follower.parse::<i64>().unwrap()])
    );
}

#[tokio::test]
async fn friend_changes_take_effect_on_open_sockets() {
    let app = TestApp::spawn_with_worker().await;
    let (author, author_token) = app.user("Автор", "Переменчивый").await;
    let (_, leaving_token) = app.user("Друг", "Уходящий").await;
    let (_, joining_token) = app.user("Друг", "Новый").await;
    befriend(&app, &leaving_token, &author).await;
    let mut leaving = app.live(&leaving_token, None).await;
    let mut joining = app.live(&joining_token, None).await;

    let first = app.post(&author_token, "первый").await;
    assert_eq!(next_live_post(&mut leaving).await.0, first);

    befriend(&app, &joining_token, &author).await;
    let response = app
        .put(&format!("/friend/delete/{author}"), Some(&leaving_token))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let second = app.post(&author_token, "второй").await;
    assert_eq!(next_live_post(&mut joining).await.0, second);
    assert_no_live_post(&mut leaving, 300).await;
}

#[tokio::test]
async fn a_client_that_reconnects_with_since_misses_nothing_across_a_restart() {
    let app = TestApp::spawn_with_worker().await;
    let restarting = app.spawn_instance().await;
    let (author, author_token) = app.user("Автор", "Плодовитый").await;
    let (_, reader_token) = app.user("Читатель", "Переподключающийся").await;
    befriend(&app, &reader_token, &author).await;

    let mut socket = restarting.live(&reader_token, None).await;
    let first = app.post(&author_token, "до перезапуска").await;
    assert_eq!(next_live_post(&mut socket).await.0, first);

    drop(restarting);
    // The instance closes its sockets when it stops.
    assert_eq!(close_code_of(&mut socket).await, CloseCode::Restart);

    let missed: Vec<String> = vec![
        app.post(&author_token, "пока не было").await,
        app.post(&author_token, "и ещё").await,
    ];
    let mut socket = app.live(&reader_token, Some(&first)).await;
    for id in &missed {
        assert_eq!(&next_live_post(&mut socket).await.0, id);
    }
    let live = app.post(&author_token, "снова вживую").await;
    assert_eq!(next_live_post(&mut socket).await.0, live);
    assert_no_live_post(&mut socket, 200).await;
}

#[tokio::test]
async fn a_celebrity_reaches_online_followers_without_listing_them() {
    let mut app = TestApp::spawn_configured(|config| {
        config.social.feed.celebrity_followers = 2;
    })
    .await;
    app.start_worker(worker_config_for(&app, &amqp_url()));
    let (star, star_token) = app.user("Звезда", "Яркая").await;
    let mut tokens = Vec::new();
    for n in 0..3 {
        let (_, token) = app.user("Фанат", &format!("Номер{n}")).await;
        befriend(&app, &token, &star).await;
        tokens.push(token);
    }
    let mut online = app.live(&tokens[0], None).await;
    let post = app.post(&star_token, "всем привет").await;
    assert_eq!(next_live_post(&mut online).await.0, post);
}

#[tokio::test]
async fn a_silent_client_is_closed_after_two_heartbeats() {
    let app = TestApp::spawn_configured(|config| {
        config.social.live.heartbeat_ms = 100;
    })
    .await;
    let (_, token) = app.user("Молчун", "Глухой").await;
    let (stream, _) =
        tokio_tungstenite::connect_async(live_request(app.address, Some(&token), None))
            .await
            .unwrap();
    // Not reading means not answering pings.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let mut stream = stream;
    // Reading now makes the client answer the queued pings; the server may have closed the
    // connection before those answers land, which shows as a write error instead of the close
    // frame. Either way the server gave up on the socket.
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match stream.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|frame| frame.code),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    })
    .await
    .expect("the server closes a dead socket");
    assert!(matches!(ended, Some(CloseCode::Away) | None), "{ended:?}");
}

async fn degraded(app: &TestApp) -> Value {
    let response = app.get("/ready", None).await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "optional parts never fail /ready"
    );
    response.json::<Value>().await.unwrap()["degraded"].clone()
}

#[tokio::test]
async fn ready_reports_a_missing_broker_and_a_stuck_outbox() {
    let app = TestApp::spawn_configured(|config| {
        // A port nothing listens on.
        config.social.live.amqp.url = "amqp://guest:guest@127.0.0.1:9/%2f".into();
    })
    .await;
    assert_eq!(degraded(&app).await, serde_json::json!(["rabbitmq"]));

    // No worker takes the outbox: once its oldest row is old, /ready says so.
    let (_, token) = app.user("Автор", "Застрявший").await;
    app.post(&token, "ждёт отправки").await;
    assert_eq!(degraded(&app).await, serde_json::json!(["rabbitmq"]));
    app.sql()
        .await
        .execute(
            "UPDATE feed_outbox SET created_at = now() - interval '1 minute'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        degraded(&app).await,
        serde_json::json!(["rabbitmq", "feed_worker"])
    );
}

#[tokio::test]
async fn ready_is_clean_once_the_live_consumer_runs() {
    let app = TestApp::spawn_with_worker().await;
    eventually("no degraded parts", || async {
        degraded(&app).await.is_null().then_some(())
    })
    .await;
}

/// Waits for the socket's close frame and returns its code. A post that was queued for the
/// socket may come first.
async fn close_code_of(socket: &mut crate::common::LiveSocket) -> CloseCode {
    tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Close(Some(frame)))) => return frame.code,
                Some(Ok(_)) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    })
    .await
    .expect("a close frame")
}

#[tokio::test]
async fn a_broken_live_queue_makes_clients_replay_and_nothing_is_lost() {
    let broker: std::net::SocketAddr = {
        let url = amqp_url();
        let authority = url.split('@').nth(1).unwrap().split('/').next().unwrap();
        authority.parse().unwrap()
    };
    let proxy = crate::common::proxy::ChaosProxy::start(broker).await;
    let database = TestDatabase::create("social", agora_social::migrations).await;
    let mut config = config_for(&database.url);
    // Only the server's live consumer goes through the proxy; the worker keeps its broker.
    config.social.live.amqp.url =
        amqp_url().replace(&broker.to_string(), &proxy.address.to_string());
    let mut app = TestApp::spawn_with(database, config).await;
    app.start_worker(worker_config_for(&app, &amqp_url()));
    let (author, author_token) = app.user("Автор", "Непрерывный").await;
    let (_, reader_token) = app.user("Читатель", "Терпеливый").await;
    befriend(&app, &reader_token, &author).await;
    eventually("the live consumer", || async {
        degraded(&app).await.is_null().then_some(())
    })
    .await;
    let mut socket = app.live(&reader_token, None).await;
    let before = app.post(&author_token, "до обрыва").await;
    assert_eq!(next_live_post(&mut socket).await.0, before);

    proxy.cut();
    eventually("the consumer to notice", || async {
        (degraded(&app).await == serde_json::json!(["rabbitmq"])).then_some(())
    })
    .await;
    let during = app.post(&author_token, "во время обрыва").await;
    proxy.restore();
    // Once consuming again, the instance cannot know what it missed: it asks clients to replay.
    assert_eq!(close_code_of(&mut socket).await, CloseCode::Again);
    let mut socket = app.live(&reader_token, Some(&before)).await;
    assert_eq!(next_live_post(&mut socket).await.0, during);
    assert_no_live_post(&mut socket, 300).await;
}

#[tokio::test]
async fn replay_sends_the_newest_posts_up_to_its_limit_oldest_first() {
    let app = TestApp::spawn_configured(|config| {
        config.social.live.replay_limit = 2;
    })
    .await;
    let (author, author_token) = app.user("Автор", "Многословный").await;
    let (other, other_token) = app.user("Автор", "Второй").await;
    let (_, reader_token) = app.user("Читатель", "Вернувшийся").await;
    befriend(&app, &reader_token, &author).await;
    befriend(&app, &reader_token, &other).await;
    let seen = app.post(&author_token, "уже видел").await;
    let _older = app.post(&author_token, "старый").await;
    let newer = app.post(&other_token, "новее").await;
    let newest = app.post(&author_token, "новейший").await;
    let mut socket = app.live(&reader_token, Some(&seen)).await;
    assert_eq!(next_live_post(&mut socket).await.0, newer);
    assert_eq!(next_live_post(&mut socket).await.0, newest);
    assert_no_live_post(&mut socket, 200).await;
}

#[tokio::test]
async fn a_socket_closes_when_its_token_expires() {
    let app = TestApp::spawn_configured(|config| {
        config.social.token_ttl_secs = 2;
    })
    .await;
    let (_, token) = app.user("Гость", "Недолгий").await;
    let mut socket = app.live(&token, None).await;
    let opened = std::time::Instant::now();
    assert_eq!(close_code_of(&mut socket).await, CloseCode::Policy);
    assert!(opened.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn without_redis_the_handshake_is_503_with_retry_after() {
    let app = TestApp::spawn_configured(|config| {
        // A port nothing listens on: presence cannot be recorded.
        config.platform.redis.url = "redis://127.0.0.1:9".into();
        config.platform.redis.timeout_ms = 200;
    })
    .await;
    let (_, token) = app.user("Читатель", "Без кеша").await;
    let error = tokio_tungstenite::connect_async(live_request(app.address, Some(&token), None))
        .await
        .expect_err("no socket that would receive nothing");
    match error {
        tokio_tungstenite::tungstenite::Error::Http(response) => {
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert!(response.headers().contains_key("retry-after"));
        }
        other => panic!("expected an HTTP 503, got {other}"),
    }
}
