//! The news feed's read path: order, paging, the cache boundary, invalidation by the API
//! itself, rebuild after a flush, and the database fallback when Redis is down.

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{TestApp, assert_error};

/// `count` posts by `author`, inserted directly (fast), with increasing ids; returns the ids
/// newest first, as the feed lists them.
async fn insert_posts(app: &TestApp, author: &str, count: usize) -> Vec<String> {
    let sql = app.sql().await;
    let author: i64 = author.parse().unwrap();
    let rows = sql
        .query(
            "INSERT INTO posts (author_id, text) \
             SELECT $1, 'post ' || i FROM generate_series(1, $2::int) AS i RETURNING id",
            &[&author, &(count as i32)],
        )
        .await
        .unwrap();
    let mut ids: Vec<i64> = rows.iter().map(|row| row.get(0)).collect();
    ids.sort_unstable_by(|a, b| b.cmp(a));
    ids.iter().map(i64::to_string).collect()
}

fn ids(page: &[(String, String, String)]) -> Vec<String> {
    page.iter().map(|(id, _, _)| id.clone()).collect()
}

#[tokio::test]
async fn the_feed_lists_friends_posts_newest_first_and_pages() {
    let app = TestApp::spawn().await;
    let (_, reader) = app.user("Читатель", "Лентин").await;
    let (alice, alice_token) = app.user("Алиса", "Авторова").await;
    let (bob, bob_token) = app.user("Борис", "Авторов").await;
    let (_, stranger_token) = app.user("Чужой", "Незнакомов").await;
    for friend in [&alice, &bob] {
        let response = app
            .put(&format!("/friend/set/{friend}"), Some(&reader))
            .await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    let a1 = app.post(&alice_token, "a1").await;
    let b1 = app.post(&bob_token, "b1").await;
    let a2 = app.post(&alice_token, "a2").await;
    app.post(&stranger_token, "not a friend").await;

    let page = app.feed(&reader, 0, 10).await;
    assert_eq!(
        page,
        vec![
            (a2.clone(), "a2".into(), alice.clone()),
            (b1.clone(), "b1".into(), bob.clone()),
            (a1.clone(), "a1".into(), alice.clone()),
        ]
    );
    assert_eq!(ids(&app.feed(&reader, 1, 1).await), vec![b1]);
    assert!(app.feed(&reader, 3, 10).await.is_empty());
    // Defaults: offset 0, limit 10.
    let response = app.get("/post/feed", Some(&reader)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response
            .json::<Vec<serde_json::Value>>()
            .await
            .unwrap()
            .len(),
        3
    );
}

#[tokio::test]
async fn pages_beyond_the_1000_cached_posts_come_from_the_database() {
    let app = TestApp::spawn().await;
    let (_, reader) = app.user("Читатель", "Глубокий").await;
    let (author, _) = app.user("Плодовитый", "Автор").await;
    app.put(&format!("/friend/set/{author}"), Some(&reader))
        .await;
    let all = insert_posts(&app, &author, 1015).await;

    let page = app.feed(&reader, 0, 1010).await;
    assert_eq!(ids(&page), all[..1010]);
    // Straddling the boundary and entirely beyond it.
    assert_eq!(ids(&app.feed(&reader, 995, 10).await), all[995..1005]);
    assert_eq!(ids(&app.feed(&reader, 1005, 100).await), all[1005..]);
    // The cache holds exactly the newest 1000, 8 bytes each plus a flag byte.
    let feeds = app.raw_feeds().await;
    assert_eq!(feeds.len(), 1);
    assert_eq!(feeds[0].len(), 1 + 1000 * 8);
}

#[tokio::test]
async fn friend_changes_update_the_feed_at_once() {
    let app = TestApp::spawn().await;
    let (_, reader) = app.user("Читатель", "Дружный").await;
    let (alice, alice_token) = app.user("Алиса", "Первая").await;
    let (bob, bob_token) = app.user("Борис", "Второй").await;
    let a1 = app.post(&alice_token, "a1").await;
    let b1 = app.post(&bob_token, "b1").await;
    app.put(&format!("/friend/set/{alice}"), Some(&reader))
        .await;
    assert_eq!(ids(&app.feed(&reader, 0, 10).await), vec![a1.clone()]);

    app.put(&format!("/friend/set/{bob}"), Some(&reader)).await;
    assert_eq!(
        ids(&app.feed(&reader, 0, 10).await),
        vec![b1.clone(), a1.clone()]
    );

    app.put(&format!("/friend/delete/{alice}"), Some(&reader))
        .await;
    assert_eq!(ids(&app.feed(&reader, 0, 10).await), vec![b1]);
}

#[tokio::test]
async fn edits_and_deletions_show_in_cached_feeds() {
    let app = TestApp::spawn().await;
    let (_, reader) = app.user("Читатель", "Внимательный").await;
    let (alice, alice_token) = app.user("Алиса", "Редакторова").await;
    app.put(&format!("/friend/set/{alice}"), Some(&reader))
        .await;
    let first = app.post(&alice_token, "first").await;
    let second = app.post(&alice_token, "second").await;
    assert_eq!(app.feed(&reader, 0, 10).await.len(), 2);

    let response = app
        .put_json(
            "/post/update",
            json!({"id": first, "text": "first, edited"}),
            Some(&alice_token),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let page = app.feed(&reader, 0, 10).await;
    assert_eq!(page[1].1, "first, edited");

    let response = app
        .put(&format!("/post/delete/{second}"), Some(&alice_token))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(ids(&app.feed(&reader, 0, 10).await), vec![first]);
}

/// The feed text another instance shows for the reader's newest post.
async fn newest_text_on(address: std::net::SocketAddr, token: &str) -> String {
    let posts: Vec<serde_json::Value> = reqwest::Client::new()
        .get(format!("http://{address}/post/feed?offset=0&limit=1"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    posts
        .first()
        .map(|post| post["text"].as_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn edits_and_deletions_reach_the_post_bodies_other_instances_keep_in_memory() {
    let app = TestApp::spawn().await;
    let other = app.spawn_instance().await;
    let (_, reader) = app.user("Читатель", "Дальний").await;
    let (alice, alice_token) = app.user("Алиса", "Правкина").await;
    app.put(&format!("/friend/set/{alice}"), Some(&reader))
        .await;
    let post = app.post(&alice_token, "v0").await;
    let post_id: i64 = post.parse().unwrap();
    let sql = app.sql().await;
    let mut redis = app.redis().await;
    let redis_key = format!("{}:post:{post}", app.config.platform.namespace);
    // Change the text behind the caches' back (no announcement) until the other instance
    // shows an older one: it is then serving the body from its memory.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    for version in 1.. {
        let text = format!("v{version}");
        sql.execute(
            "UPDATE posts SET text = $1 WHERE id = $2",
            &[&text, &post_id],
        )
        .await
        .unwrap();
        let _: () = redis::AsyncCommands::del(&mut redis, &redis_key)
            .await
            .unwrap();
        if newest_text_on(other.address, &reader).await != text {
            break;
        }
        // That read put the body back in Redis; the next one takes it into memory.
        newest_text_on(other.address, &reader).await;
        assert!(
            std::time::Instant::now() < deadline,
            "the other instance never kept the body in memory"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let response = app
        .put_json(
            "/post/update",
            json!({"id": post, "text": "edited through the API"}),
            Some(&alice_token),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    // Entries live 60 s: only the announcement explains seeing the edit sooner.
    crate::common::eventually("the edit on the other instance", || async {
        (newest_text_on(other.address, &reader).await == "edited through the API").then_some(())
    })
    .await;

    let response = app
        .put(&format!("/post/delete/{post}"), Some(&alice_token))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    crate::common::eventually("the deletion on the other instance", || async {
        newest_text_on(other.address, &reader)
            .await
            .is_empty()
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn after_a_flush_every_feed_comes_back_identical() {
    let app = TestApp::spawn().await;
    let mut readers = Vec::new();
    let mut authors = Vec::new();
    for i in 0..4 {
        let (id, token) = app.user("Автор", &format!("Номер{i}")).await;
        insert_posts(&app, &id, 30 + i * 10).await;
        authors.push((id, token));
    }
    for i in 0..3 {
        let (_, token) = app.user("Читатель", &format!("Номер{i}")).await;
        for (author, _) in authors.iter().skip(i) {
            app.put(&format!("/friend/set/{author}"), Some(&token))
                .await;
        }
        readers.push(token);
    }
    let mut before = Vec::new();
    for token in &readers {
        before.push(app.feed(token, 0, 200).await);
    }
    app.flush_redis().await;
    for (token, expected) in readers.iter().zip(&before) {
        assert_eq!(&app.feed(token, 0, 200).await, expected);
    }
}

#[tokio::test]
async fn concurrent_readers_of_a_missing_feed_share_one_rebuild() {
    let app = TestApp::spawn().await;
    let (_, reader) = app.user("Читатель", "Нетерпеливый").await;
    let (author, _) = app.user("Автор", "Популярный").await;
    app.put(&format!("/friend/set/{author}"), Some(&reader))
        .await;
    insert_posts(&app, &author, 50).await;
    let rebuilds_before = rebuilds(&app).await;
    let reads = (0..20).map(|_| app.feed(&reader, 0, 10));
    let pages = futures_util::future::join_all(reads).await;
    assert!(pages.windows(2).all(|pair| pair[0] == pair[1]));
    assert_eq!(rebuilds(&app).await - rebuilds_before, 1.0);
}

/// This app's rebuilds (tests in one binary share the metrics registry; the namespace label
/// tells them apart).
async fn rebuilds(app: &TestApp) -> f64 {
    let text = app.get("/metrics", None).await.text().await.unwrap();
    let series = format!(
        "feed_rebuilds_total{{namespace=\"{}\"}} ",
        app.config.platform.namespace
    );
    text.lines()
        .find_map(|line| line.strip_prefix(series.as_str()))
        .map_or(0.0, |value| value.trim().parse().unwrap())
}

#[tokio::test]
async fn without_redis_the_feed_is_read_from_the_database() {
    let app = TestApp::spawn_configured(|config| {
        // A port nothing listens on.
        config.platform.redis.url = "redis://127.0.0.1:9".into();
        config.platform.redis.timeout_ms = 200;
    })
    .await;
    let (_, reader) = app.user("Читатель", "Автономный").await;
    let (alice, alice_token) = app.user("Алиса", "Безкешева").await;
    // Writes succeed: the outbox keeps what the cache would have needed.
    let response = app
        .put(&format!("/friend/set/{alice}"), Some(&reader))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let a1 = app.post(&alice_token, "a1").await;
    let a2 = app.post(&alice_token, "a2").await;
    assert_eq!(ids(&app.feed(&reader, 0, 10).await), vec![a2, a1]);
    let outbox: i64 = app
        .sql()
        .await
        .query_one("SELECT count(*) FROM feed_outbox", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(outbox, 3);
    // Ready, but degraded (once the live consumer, which starts in the background, is up).
    crate::common::eventually("degraded: redis only", || async {
        let response = app.get("/ready", None).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: serde_json::Value = response.json().await.unwrap();
        (body["degraded"] == json!(["redis"])).then_some(())
    })
    .await;
}

#[tokio::test]
async fn the_feed_validates_its_window_and_needs_a_token() {
    let app = TestApp::spawn().await;
    let (_, token) = app.user("Читатель", "Строгий").await;
    assert_error(app.get("/post/feed", None).await, StatusCode::UNAUTHORIZED).await;
    for query in [
        "offset=-1",
        "limit=0",
        "limit=5001",
        "offset=1.5",
        "limit=abc",
    ] {
        let response = app.get(&format!("/post/feed?{query}"), Some(&token)).await;
        assert_error(response, StatusCode::BAD_REQUEST).await;
    }
    let response = app
        .get("/post/feed?offset=0&limit=10.0", Some(&token))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
}
