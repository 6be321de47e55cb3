use reqwest::StatusCode;

use crate::common::{TestApp, assert_error};

async fn friendship_exists(app: &TestApp, user: &str, friend: &str) -> bool {
    let (user, friend): (i64, i64) = (user.parse().unwrap(), friend.parse().unwrap());
    app.sql()
        .await
        .query_opt(
            "SELECT 1 FROM friendships WHERE user_id = $1 AND friend_id = $2",
            &[&user, &friend],
        )
        .await
        .unwrap()
        .is_some()
}

#[tokio::test]
async fn befriending_is_idempotent_and_one_directional() {
    let app = TestApp::spawn().await;
    let (me, token) = app.user("Дмитрий", "Лебедев").await;
    let friend = app.register("Татьяна", "Морозова").await;

    for _ in 0..2 {
        let response = app
            .put(&format!("/friend/set/{friend}"), Some(&token))
            .await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert!(friendship_exists(&app, &me, &friend).await);
    assert!(!friendship_exists(&app, &friend, &me).await);

    for _ in 0..2 {
        let response = app
            .put(&format!("/friend/delete/{friend}"), Some(&token))
            .await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert!(!friendship_exists(&app, &me, &friend).await);
}

#[tokio::test]
async fn befriending_yourself_or_a_stranger_that_does_not_exist_is_refused() {
    let app = TestApp::spawn().await;
    let (me, token) = app.user("Наталья", "Волкова").await;
    assert_error(
        app.put(&format!("/friend/set/{me}"), Some(&token)).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_error(
        app.put("/friend/set/123456789", Some(&token)).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_error(
        app.put("/friend/delete/123456789", Some(&token)).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_error(
        app.put("/friend/set/not-an-id", Some(&token)).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
}

#[tokio::test]
async fn friend_changes_need_a_valid_token() {
    let app = TestApp::spawn().await;
    let friend = app.register("Михаил", "Фёдоров").await;
    for path in [
        format!("/friend/set/{friend}"),
        format!("/friend/delete/{friend}"),
    ] {
        assert_error(app.put(&path, None).await, StatusCode::UNAUTHORIZED).await;
        assert_error(
            app.put(&path, Some("garbage")).await,
            StatusCode::UNAUTHORIZED,
        )
        .await;
        let well_formed_but_unknown = "A".repeat(43);
        assert_error(
            app.put(&path, Some(&well_formed_but_unknown)).await,
            StatusCode::UNAUTHORIZED,
        )
        .await;
    }
}
