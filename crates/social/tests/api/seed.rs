use agora_social::seed::{SEED_PASSWORD, SeedOptions, seed};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::TestApp;

struct Silent;

impl agora_social::seed::Progress for Silent {
    fn stage(&self, _: &str, _: u64) {}
    fn advance(&self, _: u64) {}
    fn finish_stage(&self) {}
}

fn options() -> SeedOptions {
    SeedOptions {
        users: 3_000,
        seed: 11,
        friends_mean: 4.0,
        celebrities: 2,
        celebrity_share: 0.5,
        posts_mean: 1.5,
    }
}

#[tokio::test]
async fn seeding_loads_a_searchable_population_and_rebuilds_the_indexes() {
    let app = TestApp::spawn().await;
    let sql = app.sql().await;
    let indexes_before: Vec<String> = sql
        .query(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY indexname",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();

    let summary = seed(&app.database.url, &options(), &Silent).await.unwrap();
    assert_eq!(summary.users, 3_000);
    assert_eq!(summary.posts, 4_500);
    assert!(
        summary.friendships > 3_000,
        "{} friendships",
        summary.friendships
    );

    let indexes_after: Vec<String> = sql
        .query(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY indexname",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(
        indexes_after, indexes_before,
        "the seeder must rebuild exactly the migration's indexes"
    );

    let orphans: i64 = sql
        .query_one(
            "SELECT count(*) FROM friendships f LEFT JOIN users u ON u.id = f.friend_id WHERE u.id IS NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(orphans, 0);
    let top_celebrity_followers: i64 = sql
        .query_one(
            "SELECT count(*) FROM friendships WHERE friend_id = $1",
            &[&summary.first_user_id],
        )
        .await
        .unwrap()
        .get(0);
    assert!(top_celebrity_followers > 1_200, "{top_celebrity_followers}");

    // A seeded user is a real user: found by search, able to log in.
    let first: Value = app
        .get(&format!("/user/get/{}", summary.first_user_id), None)
        .await
        .json()
        .await
        .unwrap();
    let prefix = |field: &str| {
        first[field]
            .as_str()
            .unwrap()
            .chars()
            .take(3)
            .collect::<String>()
    };
    let found: Vec<Value> = app
        .get(
            &format!(
                "/user/search?first_name={}&last_name={}",
                prefix("first_name"),
                prefix("second_name")
            ),
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(found.iter().any(|user| user["id"] == first["id"]));
    let login = app
        .post_json(
            "/login",
            json!({"id": first["id"], "password": SEED_PASSWORD}),
            None,
        )
        .await;
    assert_eq!(login.status(), StatusCode::OK);
}

#[tokio::test]
async fn seeding_refuses_a_database_that_has_users() {
    let app = TestApp::spawn().await;
    app.register("Иван", "Петров").await;
    let error = seed(&app.database.url, &options(), &Silent)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("already has 1 users"), "{error}");
}
