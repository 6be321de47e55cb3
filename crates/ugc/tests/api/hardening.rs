use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{FILM, UgcApp};

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

    app.proxy.as_ref().unwrap().cut();
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

    app.proxy.as_ref().unwrap().restore();
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
