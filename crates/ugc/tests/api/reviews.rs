use std::collections::HashSet;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{FILM, OTHER_FILM, UgcApp};

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
