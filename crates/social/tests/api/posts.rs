use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{TestApp, assert_error};

#[tokio::test]
async fn a_post_is_created_read_updated_and_deleted_by_its_author() {
    let app = TestApp::spawn().await;
    let (me, token) = app.user("Алексей", "Соколов").await;

    let response = app
        .post_json("/post/create", json!({"text": "Привет, мир"}), Some(&token))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let id: Value = response.json().await.unwrap();
    let id = id
        .as_str()
        .expect("the contract answers a bare string")
        .to_owned();

    let post: Value = app
        .get(&format!("/post/get/{id}"), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        post,
        json!({"id": id, "text": "Привет, мир", "author_user_id": me})
    );

    let response = app
        .put_json(
            "/post/update",
            json!({"id": id, "text": "Привет, agora"}),
            Some(&token),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let post: Value = app
        .get(&format!("/post/get/{id}"), Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(post["text"], "Привет, agora");

    let response = app.put(&format!("/post/delete/{id}"), Some(&token)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_error(
        app.get(&format!("/post/get/{id}"), None).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_error(
        app.put(&format!("/post/delete/{id}"), Some(&token)).await,
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn post_ids_grow_with_time() {
    let app = TestApp::spawn().await;
    let (_, token) = app.user("Екатерина", "Попова").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let response = app
            .post_json(
                "/post/create",
                json!({"text": format!("пост {i}")}),
                Some(&token),
            )
            .await;
        ids.push(
            response
                .json::<String>()
                .await
                .unwrap()
                .parse::<i64>()
                .unwrap(),
        );
    }
    assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "{ids:?}");
}

#[tokio::test]
async fn only_the_author_can_change_a_post() {
    let app = TestApp::spawn().await;
    let (_, author) = app.user("Ольга", "Козлова").await;
    let (_, stranger) = app.user("Сергей", "Новиков").await;
    let id: String = app
        .post_json("/post/create", json!({"text": "моё"}), Some(&author))
        .await
        .json()
        .await
        .unwrap();

    let update = app
        .put_json(
            "/post/update",
            json!({"id": id, "text": "чужое"}),
            Some(&stranger),
        )
        .await;
    assert_error(update, StatusCode::FORBIDDEN).await;
    assert_error(
        app.put(&format!("/post/delete/{id}"), Some(&stranger))
            .await,
        StatusCode::FORBIDDEN,
    )
    .await;

    let post: Value = app
        .get(&format!("/post/get/{id}"), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(post["text"], "моё");
}

#[tokio::test]
async fn post_input_is_validated() {
    let app = TestApp::spawn().await;
    let (_, token) = app.user("Константин", "Осипов").await;
    for body in [
        json!({}),
        json!({"text": ""}),
        json!({"text": "   "}),
        json!({"text": "x".repeat(10_001)}),
        json!({"text": 5}),
        json!({"text": "a", "extra": 1}),
    ] {
        assert_error(
            app.post_json("/post/create", body, Some(&token)).await,
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
    for body in [
        json!({"text": "a"}),
        json!({"id": "abc", "text": "a"}),
        json!({"id": "1"}),
    ] {
        assert_error(
            app.put_json("/post/update", body, Some(&token)).await,
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
    let missing = app
        .put_json(
            "/post/update",
            json!({"id": "123456789", "text": "a"}),
            Some(&token),
        )
        .await;
    assert_error(missing, StatusCode::NOT_FOUND).await;
    assert_error(
        app.get("/post/get/abc", None).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_error(
        app.get("/post/get/123456789", None).await,
        StatusCode::NOT_FOUND,
    )
    .await;
}

#[tokio::test]
async fn post_changes_need_a_token() {
    let app = TestApp::spawn().await;
    assert_error(
        app.post_json("/post/create", json!({"text": "a"}), None)
            .await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_error(
        app.put_json("/post/update", json!({"id": "1", "text": "a"}), None)
            .await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_error(
        app.put("/post/delete/1", None).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
}
