use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{FILM, OTHER_FILM, UgcApp};

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
