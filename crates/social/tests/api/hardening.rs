//! Abuse a hostile client can try: slow or huge requests, too many connections, made-up
//! methods, password guessing, sessions that never end, and malformed input at the edges.

use std::time::{Duration, Instant};

use agora_platform::config::OpsListen;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{PASSWORD, TestApp, assert_error};

/// Reads what the server sends until it closes the connection (or `within` passes).
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let mut received = Vec::new();
    let outcome = tokio::time::timeout(within, stream.read_to_end(&mut received)).await;
    outcome
        .ok()
        .map(|_| String::from_utf8_lossy(&received).into_owned())
}

/// The JSON body of a raw HTTP/1.1 response.
fn raw_body(response: &str) -> Value {
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    serde_json::from_str(body).unwrap_or_else(|_| panic!("not a JSON body: {response:?}"))
}

#[tokio::test]
async fn a_client_that_never_finishes_its_request_head_is_disconnected() {
    let app = TestApp::spawn_configured(|config| config.http.header_timeout_secs = 1).await;
    let mut stream = TcpStream::connect(app.address).await.unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    // Drip one more byte after half a second: the limit is on the whole head, not per byte.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = stream.write_all(b"X").await;
    let closed = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(closed.is_some(), "still open after 5 s");
    assert!(started.elapsed() < Duration::from_secs(3));

    // An idle keep-alive connection goes the same way.
    let mut idle = TcpStream::connect(app.address).await.unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answered = read_until_closed(&mut idle, Duration::from_secs(5)).await;
    assert!(answered.is_some_and(|text| text.starts_with("HTTP/1.1 200")));
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_gets_408() {
    let app = TestApp::spawn_configured(|config| config.http.body_timeout_secs = 1).await;
    let mut stream = TcpStream::connect(app.address).await.unwrap();
    stream
        .write_all(
            b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"id\":",
        )
        .await
        .unwrap();
    let response = read_until_closed(&mut stream, Duration::from_secs(5))
        .await
        .expect("answered and closed within 5 s");
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(raw_body(&response)["message"].as_str().is_some());
}

#[tokio::test]
async fn connections_beyond_the_cap_are_refused_with_503() {
    let app = TestApp::spawn_configured(|config| config.http.max_connections = 4).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut stream = TcpStream::connect(app.address).await.unwrap();
        // A request makes sure the server has taken the connection.
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buffer = [0u8; 256];
        let n = stream.read(&mut buffer).await.unwrap();
        assert!(buffer[..n].starts_with(b"HTTP/1.1 200"));
        held.push(stream);
    }
    let mut refused = TcpStream::connect(app.address).await.unwrap();
    let response = read_until_closed(&mut refused, Duration::from_secs(5))
        .await
        .expect("refused connections are closed");
    assert!(response.starts_with("HTTP/1.1 503"), "{response}");
    assert!(response.to_ascii_lowercase().contains("retry-after: 1"));
    assert_eq!(raw_body(&response)["code"], 5002);

    drop(held);
    crate::common::eventually("a freed slot serves again", || async {
        let response = reqwest::get(app.url("/health")).await.ok()?;
        (response.status() == StatusCode::OK).then_some(())
    })
    .await;
}

#[tokio::test]
async fn oversized_heads_and_uris_get_the_error_envelope() {
    let app = TestApp::spawn().await;
    // Over our URI limit (8 KiB), within the head limit: refused before routing.
    let long_uri = format!("/user/get/{}", "1".repeat(9 * 1024));
    assert_error(app.get(&long_uri, None).await, StatusCode::URI_TOO_LONG).await;

    // Over the head limit (16 KiB): the HTTP library refuses it; the answer is ours.
    let mut stream = TcpStream::connect(app.address).await.unwrap();
    let head = format!(
        "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20 * 1024)
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let response = read_until_closed(&mut stream, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 431"), "{response}");
    let body = raw_body(&response);
    assert_eq!(body["code"], 1006);
    assert_request_id_header_matches(&response);

    // A request line the library cannot parse.
    let mut stream = TcpStream::connect(app.address).await.unwrap();
    stream
        .write_all(b"GET /he alth HTTP/1.1\r\n\r\n")
        .await
        .unwrap();
    let response = read_until_closed(&mut stream, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    assert_eq!(raw_body(&response)["code"], 1000);
    assert_request_id_header_matches(&response);

    // Invalid UTF-8 in the path, and a request id header with a control character: refused by
    // the library too, and answered with the request id in the header as well as the body.
    for head in [
        &b"GET /user/get/\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        &b"GET /health HTTP/1.1\r\nHost: x\r\nX-Request-Id: a\x01b\r\n\r\n"[..],
    ] {
        let mut stream = TcpStream::connect(app.address).await.unwrap();
        stream.write_all(head).await.unwrap();
        let response = read_until_closed(&mut stream, Duration::from_secs(5))
            .await
            .unwrap();
        assert!(response.starts_with("HTTP/1.1 400"), "{response}");
        assert_request_id_header_matches(&response);
    }
}

/// A raw answer carries `x-request-id`, equal to its body's `request_id`.
fn assert_request_id_header_matches(response: &str) {
    let id = raw_body(response)["request_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let header = response
        .split("\r\n\r\n")
        .next()
        .unwrap()
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("x-request-id")
                .then(|| value.trim().to_owned())
        });
    assert_eq!(header.as_deref(), Some(id.as_str()), "{response}");
}

#[tokio::test]
async fn made_up_methods_share_one_metric_label() {
    let app = TestApp::spawn().await;
    for n in 0..20 {
        let method = reqwest::Method::from_bytes(format!("BREW{n}").as_bytes()).unwrap();
        app.request(method, "/health", None).send().await.unwrap();
    }
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    assert!(!metrics.contains("BREW"), "made-up methods became labels");
    assert!(metrics.contains(r#"method="other""#));
}

#[tokio::test]
async fn failed_logins_lock_out_the_guessing_source_not_the_account_owner() {
    let app = TestApp::spawn_configured(|config| {
        config.platform.auth.failures_per_account = 3;
        config.platform.auth.failures_per_address = 6;
        config.platform.auth.failure_window_secs = 2;
    })
    .await;
    let id = app.register("Ева", "Подборова").await;
    let wrong = |id: &str| json!({"id": id, "password": "not the password"});
    // The attacker connects from 127.0.0.2, the owner from 127.0.0.1.
    let attacker = reqwest::Client::builder()
        .local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap();
    let login_from = |client: &reqwest::Client, body: serde_json::Value| {
        client.post(app.url("/login")).json(&body).send()
    };
    for _ in 0..3 {
        let response = login_from(&attacker, wrong(&id)).await.unwrap();
        assert_error(response, StatusCode::BAD_REQUEST).await;
    }
    // The guessing source is locked out of this account, even with the right password, and
    // costs no hashing.
    for body in [wrong(&id), json!({"id": id, "password": PASSWORD})] {
        let response = login_from(&attacker, body).await.unwrap();
        let retry: u64 = response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=2).contains(&retry), "Retry-After {retry}");
        assert_error(response, StatusCode::TOO_MANY_REQUESTS).await;
    }
    // The owner, from an address that has not been failing, still signs in (after a pause,
    // since the account is being guessed at).
    let started = std::time::Instant::now();
    app.login(&id).await;
    assert!(started.elapsed() >= Duration::from_millis(900), "no pause");

    // Spread over accounts, the attacker's address runs out: 6 failures, then every account
    // waits for it, while the owner is not affected.
    let mut others = Vec::new();
    for n in 0..3 {
        others.push(app.register("Ева", &format!("Адресова{n}")).await);
    }
    for other in &others {
        let response = login_from(&attacker, wrong(other)).await.unwrap();
        assert_error(response, StatusCode::BAD_REQUEST).await;
    }
    let response = login_from(&attacker, json!({"id": others[0], "password": PASSWORD}))
        .await
        .unwrap();
    assert_error(response, StatusCode::TOO_MANY_REQUESTS).await;
    app.login(&others[0]).await;

    // A flood from one source stays limited: 50 more guesses, not one of them checked.
    for _ in 0..50 {
        let response = login_from(&attacker, wrong(&id)).await.unwrap();
        assert_error(response, StatusCode::TOO_MANY_REQUESTS).await;
    }
    app.login(&id).await;

    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let response = login_from(&attacker, json!({"id": id, "password": PASSWORD}))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "the window passed");
}

#[tokio::test]
async fn logout_ends_a_session_on_every_instance_at_once() {
    let app = TestApp::spawn().await;
    let other = app.spawn_instance().await;
    let id = app.register("Лев", "Выходов").await;
    let token = app.login(&id).await;
    let feed_on = |address: std::net::SocketAddr, token: String| async move {
        reqwest::Client::new()
            .get(format!("http://{address}/post/feed"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status()
    };
    // Both instances have checked (and cached) the token.
    crate::common::eventually("both instances accept the token", || async {
        let here = feed_on(app.address, token.clone()).await;
        let there = feed_on(other.address, token.clone()).await;
        (here == StatusCode::OK && there == StatusCode::OK).then_some(())
    })
    .await;
    let response = app
        .request(reqwest::Method::POST, "/logout", Some(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        feed_on(app.address, token.clone()).await,
        StatusCode::UNAUTHORIZED
    );
    crate::common::eventually("the other instance forgets the token", || async {
        (feed_on(other.address, token.clone()).await == StatusCode::UNAUTHORIZED).then_some(())
    })
    .await;
    let again = app
        .request(reqwest::Method::POST, "/logout", Some(&token))
        .send()
        .await
        .unwrap();
    assert_error(again, StatusCode::UNAUTHORIZED).await;

    // Everywhere: every token of the user goes.
    let first = app.login(&id).await;
    let second = app.login(&id).await;
    assert_eq!(feed_on(other.address, first.clone()).await, StatusCode::OK);
    let response = app
        .request(reqwest::Method::POST, "/logout/all", Some(&second))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    for token in [first, second] {
        let token = token.clone();
        crate::common::eventually("all sessions end", || {
            let token = token.clone();
            async move {
                (feed_on(other.address, token).await == StatusCode::UNAUTHORIZED).then_some(())
            }
        })
        .await;
    }
}

#[tokio::test]
async fn a_user_holds_a_bounded_number_of_sessions() {
    let app = TestApp::spawn_configured(|config| config.social.max_sessions_per_user = 3).await;
    let id = app.register("Ада", "Многовходова").await;
    let mut tokens = Vec::new();
    for _ in 0..5 {
        tokens.push(app.login(&id).await);
        tokio::time::sleep(Duration::from_millis(5)).await; // distinct created_at
    }
    let mut live = Vec::new();
    for token in &tokens {
        live.push(app.get("/post/feed", Some(token)).await.status() == StatusCode::OK);
    }
    assert_eq!(
        live,
        [false, false, true, true, true],
        "the oldest go first"
    );
}

#[tokio::test]
async fn security_headers_and_a_separate_operations_listener() {
    let ops_port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let app = TestApp::spawn_configured(|config| {
        config.http.ops_listen =
            OpsListen::Address(format!("127.0.0.1:{ops_port}").parse().unwrap());
    })
    .await;
    let health = app.get("/health", None).await;
    assert_eq!(health.headers()["x-content-type-options"], "nosniff");
    let swagger = app.get("/api/swagger-ui.html", None).await;
    let csp = swagger.headers()["content-security-policy"]
        .to_str()
        .unwrap();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    let id = app.register("Нина", "Заголовкова").await;
    let login = app
        .post_json("/login", json!({"id": id, "password": PASSWORD}), None)
        .await;
    assert_eq!(login.headers()["cache-control"], "no-store");

    // Operations endpoints are not on the API port...
    for path in ["/metrics", "/ready"] {
        assert_error(app.get(path, None).await, StatusCode::NOT_FOUND).await;
    }
    // ...but on their own.
    let ops = format!("http://127.0.0.1:{ops_port}");
    let metrics = reqwest::get(format!("{ops}/metrics")).await.unwrap();
    assert_eq!(metrics.status(), StatusCode::OK);
    crate::common::eventually("ready on the ops port", || async {
        let ready = reqwest::get(format!("{ops}/ready")).await.ok()?;
        (ready.status() == StatusCode::OK).then_some(())
    })
    .await;
}

#[tokio::test]
async fn ids_with_leading_zeros_and_invalid_utf8_queries_are_400() {
    let app = TestApp::spawn().await;
    let id = app.register("Зоя", "Нулёва").await;
    assert_eq!(
        app.get(&format!("/user/get/{id}"), None).await.status(),
        StatusCode::OK
    );
    assert_error(
        app.get(&format!("/user/get/0{id}"), None).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_error(
        app.get("/user/get/0000000000000000042", None).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    for query in [
        "first_name=%FF&last_name=a",
        "first_name=a&last_name=%D0",
        "first_name=%C3%28&last_name=",
    ] {
        let response = app.get(&format!("/user/search?{query}"), None).await;
        assert_error(response, StatusCode::BAD_REQUEST).await;
    }
    // Valid multi-byte percent-encoding still works.
    let found = app
        .get(
            "/user/search?first_name=%D0%97%D0%BE%D1%8F&last_name=",
            None,
        )
        .await;
    assert_eq!(found.status(), StatusCode::OK);
    assert_eq!(found.json::<Vec<Value>>().await.unwrap().len(), 1);
}

#[tokio::test]
async fn the_longest_post_is_accepted_even_fully_json_escaped() {
    let app = TestApp::spawn().await;
    let id = app.register("Эмма", "Смайликова").await;
    let token = app.login(&id).await;
    let text = "😀".repeat(10_000);
    // Python's json.dumps writes every emoji as an escaped surrogate pair: 12 bytes each.
    let body = format!("{{\"text\": \"{}\"}}", "\\ud83d\\ude00".repeat(10_000));
    assert!(body.len() > 120_000);
    let response = app
        .request(reqwest::Method::POST, "/post/create", Some(&token))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let post_id: String = response.json().await.unwrap();
    let post: Value = app
        .get(&format!("/post/get/{post_id}"), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(post["text"], text);
}

#[tokio::test]
async fn a_feed_page_is_bounded_in_bytes_and_says_where_to_continue() {
    let app = TestApp::spawn_with_worker().await;
    let (reader, reader_token) = app.user("Фёдор", "Читатель").await;
    let (author, author_token) = app.user("Анна", "Многословова").await;
    let response = app
        .put(&format!("/friend/set/{author}"), Some(&reader_token))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let _ = reader;
    // 40 posts of 40 KB: 1.6 MB of text, over the 1 MiB a page carries.
    let heavy = "😀".repeat(10_000);
    for _ in 0..40 {
        app.post(&author_token, &heavy).await;
    }
    let read = |offset: usize| {
        let app = &app;
        let token = reader_token.clone();
        async move {
            let response = app
                .get(
                    &format!("/post/feed?offset={offset}&limit=1000"),
                    Some(&token),
                )
                .await;
            assert_eq!(response.status(), StatusCode::OK);
            let next = response
                .headers()
                .get("x-next-offset")
                .map(|value| value.to_str().unwrap().parse::<usize>().unwrap());
            let posts: Vec<Value> = response.json().await.unwrap();
            (posts, next)
        }
    };
    let (first, next) = crate::common::eventually("all 40 posts in the feed", || async {
        let (first, next) = read(0).await;
        let (second, _) = read(next.unwrap_or(0)).await;
        (next.is_some() && first.len() + second.len() == 40).then_some((first, next))
    })
    .await;
    let next = next.unwrap();
    assert_eq!(next, first.len());
    assert!(first.len() < 40);
    let bytes: usize = first
        .iter()
        .map(|post| post["text"].as_str().unwrap().len())
        .sum();
    assert!(bytes <= 1 << 20, "page carries {bytes} bytes of text");
    let (rest, after) = read(next).await;
    assert_eq!(after, None, "the rest fits one page");
    let mut ids: Vec<&str> = first
        .iter()
        .chain(&rest)
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    ids.dedup();
    assert_eq!(ids.len(), 40, "no post twice, none skipped");
    let _ = author;
}

#[tokio::test]
async fn one_user_flooding_live_sockets_is_refused_and_others_still_connect() {
    let app = TestApp::spawn_configured(|config| config.social.live.sockets_per_user = 5).await;
    let (_, flooder) = app.user("Флуд", "Сокетов").await;
    let (_, other) = app.user("Обычный", "Читатель").await;
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(app.live(&flooder, None).await);
    }
    let mut refused = 0;
    for _ in 0..50 {
        match tokio_tungstenite::connect_async(crate::common::live_request(
            app.address,
            Some(&flooder),
            None,
        ))
        .await
        {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
                assert!(response.headers().contains_key("retry-after"));
                let body: Value = serde_json::from_slice(response.body().as_deref().unwrap())
                    .expect("an error envelope");
                assert_eq!(body["code"], 1009);
                refused += 1;
            }
            other => panic!("a socket over the limit: {:?}", other.map(|_| ())),
        }
    }
    // Everyone else is unaffected.
    let _other_socket = app.live(&other, None).await;
    let health = app.get("/health", None).await;
    assert_eq!(health.status(), StatusCode::OK);
    println!("5 sockets held, {refused} more refused with 429; another user connected");
    // Closing one makes room.
    drop(held.pop());
    crate::common::eventually("room for the flooder again", || async {
        tokio_tungstenite::connect_async(crate::common::live_request(
            app.address,
            Some(&flooder),
            None,
        ))
        .await
        .ok()
        .map(|_| ())
    })
    .await;
}
