//! UGC alone in its process, as `agora serve --services ugc` runs it, on a fresh UGC database
//! and a fresh main database (sessions) of the test stack, reached through a proxy that can
//! cut the UGC database off. Users and tokens are made directly: rows in `users`, sessions
//! through the platform.

use std::collections::HashSet;
use std::net::SocketAddr;

use agora_platform::session::Sessions;
use agora_platform::testing::proxy::ChaosProxy;
use agora_platform::testing::{SharedSettings, TestDatabase, server_of, url_through};
use agora_ugc::UgcConfig;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio_postgres::NoTls;

const FILM: &str = "6f9619ff-8b86-d011-b42d-00c04fc964ff";
const OTHER_FILM: &str = "0b8e1c2a-5d3f-4e6a-9b7c-1d2e3f4a5b6c";

struct UgcApp {
    address: SocketAddr,
    main: TestDatabase,
    ugc: TestDatabase,
    proxy: ChaosProxy,
    sessions: Sessions,
    client: reqwest::Client,
    _stop: oneshot::Sender<()>,
}

impl UgcApp {
    async fn spawn() -> Self {
        let main = TestDatabase::create("social", agora_social::migrations).await;
        let ugc = TestDatabase::create("ugc", agora_ugc::migrations).await;
        let proxy = ChaosProxy::start(server_of(&ugc.url)).await;
        let through_proxy = url_through(&ugc.url, proxy.address);
        let settings = SharedSettings::new(
            &main.url,
            &format!("ugctest{}-{}", std::process::id(), ugc.name()),
        );
        let config = UgcConfig {
            deadline_ms: 3_000,
            ..UgcConfig::for_database(through_proxy)
        };
        let service = agora_ugc::service(&config, settings.shared()).unwrap();
        let (address, stop) = agora_platform::testing::serve(vec![service]).await;
        let sessions = settings.sessions("ugc-test");
        Self {
            address,
            main,
            ugc,
            proxy,
            sessions,
            client: reqwest::Client::new(),
            _stop: stop,
        }
    }

    async fn user(&self, name: &str) -> (String, String) {
        agora_platform::testing::user_with_session(&self.main.url, &self.sessions, name).await
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value, reqwest::header::HeaderMap) {
        agora_platform::testing::call_json(
            &self.client,
            self.address,
            method,
            path,
            token,
            body,
            &[],
        )
        .await
    }

    async fn ok(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Value {
        let (status, body, _) = self.call(method, path, token, body).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        body
    }

    async fn status(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> StatusCode {
        self.call(method, path, token, body).await.0
    }

    async fn rate(&self, token: &str, film: &str, score: i64) -> Value {
        self.ok(
            Method::PUT,
            &format!("/ugc/films/{film}/rating"),
            Some(token),
            Some(json!({"score": score})),
        )
        .await
    }

    async fn review(&self, token: &str, author: &str, text: &str, score: i64) -> Value {
        self.ok(
            Method::PUT,
            &format!("/ugc/films/{FILM}/reviews/{author}"),
            Some(token),
            Some(json!({"text": text, "score": score})),
        )
        .await
    }

    /// Every review of FILM in `sort` order, page by page.
    async fn all_reviews(&self, sort: &str, limit: usize) -> Vec<Value> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/ugc/films/{FILM}/reviews?sort={sort}&limit={limit}");
            if let Some(cursor) = &cursor {
                path.push_str(&format!("&cursor={cursor}"));
            }
            let page = self.ok(Method::GET, &path, None, None).await;
            let got = page["items"].as_array().unwrap().clone();
            assert!(got.len() <= limit);
            items.extend(got);
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return items,
            }
        }
    }

    async fn ugc_sql(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.ugc.url, NoTls).await.unwrap();
        tokio::spawn(connection);
        client
    }
}

#[tokio::test]
async fn ratings_are_set_changed_removed_and_averaged() {
    let app = UgcApp::spawn().await;
    let (_, ann) = app.user("Ann").await;
    let (_, bob) = app.user("Bob").await;

    let empty = app
        .ok(
            Method::GET,
            &format!("/ugc/films/{FILM}/rating"),
            None,
            None,
        )
        .await;
    assert_eq!(
        empty,
        json!({"film_id": FILM, "average": null, "votes": 0, "my_score": null})
    );

    let after = app.rate(&ann, FILM, 8).await;
    assert_eq!(after["votes"], 1);
    assert_eq!(after["my_score"], 8);
    app.rate(&bob, FILM, 5).await;
    // Again with the same score: a retry changes nothing.
    let retried = app.rate(&bob, FILM, 5).await;
    assert_eq!(
        (retried["votes"].clone(), retried["average"].clone()),
        (json!(2), json!(6.5))
    );
    let changed = app.rate(&ann, FILM, 10).await;
    assert_eq!(
        (changed["votes"].clone(), changed["average"].clone()),
        (json!(2), json!(7.5))
    );

    // Anyone may read; a signed-in reader also sees their own score.
    let public = app
        .ok(
            Method::GET,
            &format!("/ugc/films/{FILM}/rating"),
            None,
            None,
        )
        .await;
    assert_eq!(public["my_score"], Value::Null);
    let mine = app
        .ok(
            Method::GET,
            &format!("/ugc/films/{FILM}/rating"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(mine["my_score"], 5);

    let removed = app
        .ok(
            Method::DELETE,
            &format!("/ugc/films/{FILM}/rating"),
            Some(&ann),
            None,
        )
        .await;
    assert_eq!(
        (removed["votes"].clone(), removed["average"].clone()),
        (json!(1), json!(5.0))
    );
    // Removing what is gone is not an error.
    app.ok(
        Method::DELETE,
        &format!("/ugc/films/{FILM}/rating"),
        Some(&ann),
        None,
    )
    .await;
    let other = app
        .ok(
            Method::GET,
            &format!("/ugc/films/{OTHER_FILM}/rating"),
            None,
            None,
        )
        .await;
    assert_eq!(other["votes"], 0);
}

#[tokio::test]
async fn film_totals_stay_exact_under_concurrent_votes() {
    let app = UgcApp::spawn().await;
    let mut users = Vec::new();
    for i in 0..24 {
        users.push(app.user(&format!("Voter{i}")).await.1);
    }
    // Everyone rates at once, then everyone changes or withdraws at once, twice over.
    for round in 0..3i64 {
        let mut tasks = Vec::new();
        for (i, token) in users.iter().enumerate() {
            let (client, address, token) = (app.client.clone(), app.address, token.clone());
            tasks.push(tokio::spawn(async move {
                let path = format!("http://{address}/ugc/films/{FILM}/rating");
                let request = if round == 2 && i % 3 == 0 {
                    client.delete(path).bearer_auth(token)
                } else {
                    client
                        .put(path)
                        .bearer_auth(token)
                        .json(&json!({"score": (i as i64 + round * 3) % 11}))
                };
                request.send().await.unwrap().status()
            }));
        }
        for task in tasks {
            assert_eq!(task.await.unwrap(), StatusCode::OK);
        }
    }
    let sql = app.ugc_sql().await;
    let truth = sql
        .query_one(
            "SELECT coalesce(sum(score), 0)::bigint, count(*) FROM ratings",
            &[],
        )
        .await
        .unwrap();
    let (sum, count): (i64, i64) = (truth.get(0), truth.get(1));
    assert_eq!(count, 16);
    let shown = app
        .ok(
            Method::GET,
            &format!("/ugc/films/{FILM}/rating"),
            None,
            None,
        )
        .await;
    assert_eq!(shown["votes"], count);
    let average = (sum as f64 / count as f64 * 100.0).round() / 100.0;
    assert_eq!(shown["average"], json!(average));
    let counters = sql
        .query_one("SELECT score_sum, votes FROM film_ratings", &[])
        .await
        .unwrap();
    assert_eq!(
        (counters.get::<_, i64>(0), counters.get::<_, i64>(1)),
        (sum, count)
    );
}

#[tokio::test]
async fn reviews_are_written_edited_sorted_paged_and_voted_on() {
    let app = UgcApp::spawn().await;
    let mut people = Vec::new();
    for name in ["Ann", "Bob", "Cid", "Dee", "Eve", "Fay", "Gus"] {
        people.push(app.user(name).await);
    }
    let (ann_id, ann) = people[0].clone();
    let (bob_id, bob) = people[1].clone();

    let first = app
        .review(&ann, &ann_id, "  A slow start, a brilliant ending.  ", 8)
        .await;
    assert_eq!(first["text"], "A slow start, a brilliant ending.");
    assert_eq!(first["edited_at"], Value::Null);
    // The review's score is the author's rating of the film.
    let rating = app
        .ok(
            Method::GET,
            &format!("/ugc/films/{FILM}/rating"),
            Some(&ann),
            None,
        )
        .await;
    assert_eq!(rating["my_score"], 8);

    let edited = app
        .review(&ann, &ann_id, "Better the second time.", 9)
        .await;
    assert_eq!(edited["written_at"], first["written_at"]);
    assert_ne!(edited["edited_at"], Value::Null);
    let rating = app
        .ok(
            Method::GET,
            &format!("/ugc/films/{FILM}/rating"),
            None,
            None,
        )
        .await;
    assert_eq!(
        (rating["votes"].clone(), rating["average"].clone()),
        (json!(1), json!(9.0))
    );

    // Nobody edits or deletes another user's review.
    let path = format!("/ugc/films/{FILM}/reviews/{ann_id}");
    let (status, body, _) = app
        .call(
            Method::PUT,
            &path,
            Some(&bob),
            Some(json!({"text": "mine now", "score": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(
        app.status(Method::DELETE, &path, Some(&bob), None).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.ok(Method::GET, &path, None, None).await["text"],
        "Better the second time."
    );

    // Everyone else writes one; then votes: Ann's review gets 4 likes, Bob's 2 likes and 3 dislikes.
    for (id, token) in &people[1..] {
        app.review(token, id, &format!("{id} thinks so"), 5).await;
    }
    for (_, token) in &people[2..6] {
        app.ok(
            Method::PUT,
            &format!("{path}/vote"),
            Some(token),
            Some(json!({"vote": "like"})),
        )
        .await;
    }
    let bob_path = format!("/ugc/films/{FILM}/reviews/{bob_id}");
    for (i, (_, token)) in people[2..7].iter().enumerate() {
        let vote = if i < 2 { "like" } else { "dislike" };
        app.ok(
            Method::PUT,
            &format!("{bob_path}/vote"),
            Some(token),
            Some(json!({"vote": vote})),
        )
        .await;
    }
    // Changing a vote moves it; voting the same again changes nothing.
    let (_, gus) = &people[6];
    let changed = app
        .ok(
            Method::PUT,
            &format!("{path}/vote"),
            Some(gus),
            Some(json!({"vote": "dislike"})),
        )
        .await;
    assert_eq!(
        (
            changed["likes"].clone(),
            changed["dislikes"].clone(),
            changed["my_vote"].clone()
        ),
        (json!(4), json!(1), json!("dislike"))
    );
    let changed = app
        .ok(
            Method::PUT,
            &format!("{path}/vote"),
            Some(gus),
            Some(json!({"vote": "like"})),
        )
        .await;
    assert_eq!(
        (changed["likes"].clone(), changed["dislikes"].clone()),
        (json!(5), json!(0))
    );
    let again = app
        .ok(
            Method::PUT,
            &format!("{path}/vote"),
            Some(gus),
            Some(json!({"vote": "like"})),
        )
        .await;
    assert_eq!(again["likes"], 5);
    let withdrawn = app
        .ok(Method::DELETE, &format!("{path}/vote"), Some(gus), None)
        .await;
    assert_eq!(
        (withdrawn["likes"].clone(), withdrawn["my_vote"].clone()),
        (json!(4), Value::Null)
    );

    // No vote on your own review, none on a review that does not exist.
    let (status, _, _) = app
        .call(
            Method::PUT,
            &format!("{path}/vote"),
            Some(&ann),
            Some(json!({"vote": "like"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = app
        .call(
            Method::PUT,
            &format!("/ugc/films/{OTHER_FILM}/reviews/{bob_id}/vote"),
            Some(&ann),
            Some(json!({"vote": "like"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Newest first and most liked first, through pages of two: every review once, in order.
    let newest = app.all_reviews("newest", 2).await;
    assert_eq!(newest.len(), 7);
    let times: Vec<&str> = newest
        .iter()
        .map(|r| r["written_at"].as_str().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "{times:?}");
    assert_eq!(newest.last().unwrap()["author_id"], json!(ann_id));
    let top = app.all_reviews("top", 2).await;
    let authors: HashSet<String> = top
        .iter()
        .map(|r| r["author_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(authors.len(), 7);
    assert_eq!(top[0]["author_id"], json!(ann_id));
    assert_eq!(top.last().unwrap()["author_id"], json!(bob_id));
    let scores: Vec<i64> = top
        .iter()
        .map(|r| r["likes"].as_i64().unwrap() - r["dislikes"].as_i64().unwrap())
        .collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");

    // A signed-in reader sees their votes in the list.
    let page = app
        .ok(
            Method::GET,
            &format!("/ugc/films/{FILM}/reviews?sort=top&limit=1"),
            Some(&people[2].1),
            None,
        )
        .await;
    assert_eq!(page["items"][0]["my_vote"], "like");

    // Deleting a review takes its votes along; the rating stays.
    assert_eq!(
        app.ok(Method::DELETE, &path, Some(&ann), None).await,
        json!({"deleted": true})
    );
    assert_eq!(
        app.ok(Method::DELETE, &path, Some(&ann), None).await,
        json!({"deleted": false})
    );
    assert_eq!(
        app.status(Method::GET, &path, None, None).await,
        StatusCode::NOT_FOUND
    );
    let votes: i64 = app
        .ugc_sql()
        .await
        .query_one(
            "SELECT count(*) FROM review_votes WHERE author_id = $1",
            &[&ann_id.parse::<i64>().unwrap()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(votes, 0);
}

#[tokio::test]
async fn review_votes_stay_exact_under_concurrency() {
    let app = UgcApp::spawn().await;
    let (author_id, author) = app.user("Author").await;
    app.review(&author, &author_id, "Vote on me", 7).await;
    let mut voters = Vec::new();
    for i in 0..20 {
        voters.push(app.user(&format!("Fan{i}")).await.1);
    }
    let path = format!("/ugc/films/{FILM}/reviews/{author_id}/vote");
    let mut tasks = Vec::new();
    for (i, token) in voters.iter().enumerate() {
        let (client, address, token, path) =
            (app.client.clone(), app.address, token.clone(), path.clone());
        tasks.push(tokio::spawn(async move {
            let url = format!("http://{address}{path}");
            let first = if i % 2 == 0 { "like" } else { "dislike" };
            client
                .put(&url)
                .bearer_auth(&token)
                .json(&json!({"vote": first}))
                .send()
                .await
                .unwrap();
            if i % 5 == 0 {
                client
                    .put(&url)
                    .bearer_auth(&token)
                    .json(&json!({"vote": "like"}))
                    .send()
                    .await
                    .unwrap();
            }
            if i % 7 == 0 {
                client
                    .delete(&url)
                    .bearer_auth(&token)
                    .send()
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let sql = app.ugc_sql().await;
    let truth = sql
        .query_one(
            "SELECT count(*) FILTER (WHERE vote = 1), count(*) FILTER (WHERE vote = -1) FROM review_votes",
            &[],
        )
        .await
        .unwrap();
    let review = app
        .ok(
            Method::GET,
            &format!("/ugc/films/{FILM}/reviews/{author_id}"),
            None,
            None,
        )
        .await;
    assert_eq!(review["likes"], truth.get::<_, i64>(0));
    assert_eq!(review["dislikes"], truth.get::<_, i64>(1));
}

#[tokio::test]
async fn bookmarks_are_added_once_listed_by_page_and_removed() {
    let app = UgcApp::spawn().await;
    let (_, ann) = app.user("Ann").await;
    let (_, bob) = app.user("Bob").await;
    let films: Vec<String> = (0..5)
        .map(|i| format!("00000000-0000-4000-8000-00000000000{i}"))
        .collect();
    for film in &films {
        app.ok(
            Method::PUT,
            &format!("/ugc/bookmarks/{film}"),
            Some(&ann),
            None,
        )
        .await;
    }
    let first = app
        .ok(
            Method::PUT,
            &format!("/ugc/bookmarks/{}", films[0]),
            Some(&ann),
            None,
        )
        .await;
    let again = app
        .ok(
            Method::PUT,
            &format!("/ugc/bookmarks/{}", films[0]),
            Some(&ann),
            None,
        )
        .await;
    assert_eq!(first["added_at"], again["added_at"]);

    let mut seen = Vec::new();
    let mut path = "/ugc/bookmarks?limit=2".to_owned();
    loop {
        let page = app.ok(Method::GET, &path, Some(&ann), None).await;
        for item in page["items"].as_array().unwrap() {
            seen.push(item["film_id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(next) => path = format!("/ugc/bookmarks?limit=2&cursor={next}"),
            None => break,
        }
    }
    let mut newest_first = films.clone();
    newest_first.reverse();
    assert_eq!(seen, newest_first);
    // Each user sees only their own.
    let theirs = app
        .ok(Method::GET, "/ugc/bookmarks", Some(&bob), None)
        .await;
    assert_eq!(theirs["items"], json!([]));

    let removed = app
        .ok(
            Method::DELETE,
            &format!("/ugc/bookmarks/{}", films[2]),
            Some(&ann),
            None,
        )
        .await;
    assert_eq!(removed, json!({"deleted": true}));
    let removed = app
        .ok(
            Method::DELETE,
            &format!("/ugc/bookmarks/{}", films[2]),
            Some(&ann),
            None,
        )
        .await;
    assert_eq!(removed, json!({"deleted": false}));
    let left = app
        .ok(Method::GET, "/ugc/bookmarks", Some(&ann), None)
        .await;
    assert_eq!(left["items"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn bad_input_and_strangers_get_clear_4xx() {
    let app = UgcApp::spawn().await;
    let (ann_id, ann) = app.user("Ann").await;
    let rating = format!("/ugc/films/{FILM}/rating");
    type Case<'a> = (Method, String, Option<&'a str>, Option<Value>, StatusCode);
    let cases: Vec<Case> = vec![
        (
            Method::PUT,
            rating.clone(),
            None,
            Some(json!({"score": 5})),
            StatusCode::UNAUTHORIZED,
        ),
        (
            Method::GET,
            rating.clone(),
            Some("not-a-token"),
            None,
            StatusCode::UNAUTHORIZED,
        ),
        (
            Method::PUT,
            "/ugc/films/not-a-uuid/rating".into(),
            Some(&ann),
            Some(json!({"score": 5})),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::PUT,
            rating.clone(),
            Some(&ann),
            Some(json!({"score": 11})),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::PUT,
            rating.clone(),
            Some(&ann),
            Some(json!({"score": 2.5})),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::PUT,
            rating.clone(),
            Some(&ann),
            Some(json!({"score": 5, "extra": 1})),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::PUT,
            rating.clone(),
            Some(&ann),
            Some(json!("five")),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::PUT,
            format!("/ugc/films/{FILM}/reviews/{ann_id}"),
            Some(&ann),
            Some(json!({"text": "   ", "score": 5})),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::PUT,
            format!("/ugc/films/{FILM}/reviews/{ann_id}"),
            Some(&ann),
            Some(json!({"text": "x".repeat(5001), "score": 5})),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::PUT,
            format!("/ugc/films/{FILM}/reviews/abc"),
            Some(&ann),
            Some(json!({"text": "fine", "score": 5})),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::PUT,
            format!("/ugc/films/{FILM}/reviews/{ann_id}/vote"),
            Some(&ann),
            Some(json!({"vote": "love"})),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            format!("/ugc/films/{FILM}/reviews?sort=oldest"),
            None,
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            format!("/ugc/films/{FILM}/reviews?limit=0"),
            None,
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            format!("/ugc/films/{FILM}/reviews?limit=101"),
            None,
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            format!("/ugc/films/{FILM}/reviews?cursor=forged"),
            None,
            None,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            "/ugc/bookmarks".into(),
            None,
            None,
            StatusCode::UNAUTHORIZED,
        ),
        (
            Method::GET,
            "/ugc/bookmarks?cursor=%00".into(),
            Some(&ann),
            None,
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (method, path, token, body, expected) in cases {
        let (status, body, _) = app.call(method.clone(), &path, token, body).await;
        assert_eq!(status, expected, "{method} {path}: {body}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{method} {path}: {body}"
        );
    }
    // A cursor of one order is refused in the other.
    for i in 0..2 {
        let (id, token) = app.user(&format!("Writer{i}")).await;
        app.review(&token, &id, "words", 5).await;
    }
    let page = app
        .ok(
            Method::GET,
            &format!("/ugc/films/{FILM}/reviews?sort=newest&limit=1"),
            None,
            None,
        )
        .await;
    let cursor = page["next_cursor"].as_str().unwrap();
    let (status, _, _) = app
        .call(
            Method::GET,
            &format!("/ugc/films/{FILM}/reviews?sort=top&cursor={cursor}"),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_store_that_is_down_is_503_and_then_recovers() {
    let app = UgcApp::spawn().await;
    let (_, ann) = app.user("Ann").await;
    app.rate(&ann, FILM, 7).await;

    app.proxy.cut();
    let rating = format!("/ugc/films/{FILM}/rating");
    for (method, body) in [
        (Method::GET, None),
        (Method::PUT, Some(json!({"score": 3}))),
    ] {
        let (status, body, headers) = app.call(method.clone(), &rating, Some(&ann), body).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{method}: {body}");
        assert!(
            headers.contains_key("retry-after"),
            "{method}: no Retry-After"
        );
        for field in ["message", "request_id", "code"] {
            assert!(body.get(field).is_some(), "{method}: {body} lacks {field}");
        }
    }

    app.proxy.restore();
    let recovered = agora_platform::testing::eventually("UGC answering again", || async {
        let (status, body, _) = app
            .call(Method::PUT, &rating, Some(&ann), Some(json!({"score": 4})))
            .await;
        (status == StatusCode::OK).then_some(body)
    })
    .await;
    assert_eq!(
        (recovered["votes"].clone(), recovered["my_score"].clone()),
        (json!(1), json!(4))
    );
}
