use reqwest::Method;
use serde_json::json;

use crate::common::UgcApp;

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
