use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{PASSWORD, TestApp, assert_error};

#[tokio::test]
async fn registration_with_only_the_required_fields_works_and_absent_fields_are_omitted() {
    let app = TestApp::spawn().await;
    let id = app.register("Иван", "Петров").await;
    assert!(id.parse::<i64>().unwrap() > 0);

    let response = app.get(&format!("/user/get/{id}"), None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let user: Value = response.json().await.unwrap();
    assert_eq!(
        user,
        json!({"id": id, "first_name": "Иван", "second_name": "Петров"})
    );
}

#[tokio::test]
async fn a_full_profile_round_trips() {
    let app = TestApp::spawn().await;
    let response = app
        .post_json(
            "/user/register",
            json!({
                "first_name": "Анна", "second_name": "Смирнова", "birthdate": "1992-04-17",
                "biography": "Люблю горы", "city": "Москва", "password": PASSWORD
            }),
            None,
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let id = response.json::<Value>().await.unwrap()["user_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = app.login(&id).await;

    // Readable with and without a token.
    for token in [None, Some(token.as_str())] {
        let user: Value = app
            .get(&format!("/user/get/{id}"), token)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            user,
            json!({"id": id, "first_name": "Анна", "second_name": "Смирнова", "birthdate": "1992-04-17",
                   "biography": "Люблю горы", "city": "Москва"})
        );
    }
}

#[tokio::test]
async fn invalid_registrations_get_400_with_a_message() {
    let app = TestApp::spawn().await;
    let valid = json!({"first_name": "Иван", "second_name": "Петров", "password": PASSWORD});
    let with = |key: &str, value: Value| {
        let mut body = valid.clone();
        body[key] = value;
        body
    };
    let without = |key: &str| {
        let mut body = valid.clone();
        body.as_object_mut().unwrap().remove(key);
        body
    };
    let cases = [
        without("first_name"),
        without("second_name"),
        without("password"),
        with("password", json!("short")),
        with("first_name", json!("   ")),
        with("first_name", json!("x".repeat(101))),
        with("birthdate", json!("17.04.1992")),
        with("birthdate", json!("1992-02-30")),
        with("birthdate", json!("2999-01-01")),
        with("city", json!("Мос\u{0}ква")),
        with("first_name", json!(42)),
        with("unexpected", json!("field")),
        json!([1, 2, 3]),
    ];
    for body in cases {
        let response = app.post_json("/user/register", body.clone(), None).await;
        assert_error(response, StatusCode::BAD_REQUEST).await;
    }

    let malformed = app
        .request(reqwest::Method::POST, "/user/register", None)
        .header("content-type", "application/json")
        .body("{\"first_name\": ")
        .send()
        .await
        .unwrap();
    assert_error(malformed, StatusCode::BAD_REQUEST).await;

    let not_json = app
        .request(reqwest::Method::POST, "/user/register", None)
        .body(valid.to_string())
        .send()
        .await
        .unwrap();
    assert_error(not_json, StatusCode::BAD_REQUEST).await;
}

#[tokio::test]
async fn an_oversized_body_is_refused_with_413() {
    let app = TestApp::spawn().await;
    let body =
        json!({"first_name": "a".repeat(200 * 1024), "second_name": "b", "password": PASSWORD});
    let response = app.post_json("/user/register", body, None).await;
    assert_error(response, StatusCode::PAYLOAD_TOO_LARGE).await;
}

#[tokio::test]
async fn login_distinguishes_unknown_users_wrong_passwords_and_bad_input() {
    let app = TestApp::spawn().await;
    let id = app.register("Мария", "Кузнецова").await;

    let token = app.login(&id).await;
    assert_eq!(token.len(), 43, "256 bits in base64url");
    assert_ne!(
        token,
        app.login(&id).await,
        "every login issues a new token"
    );

    let wrong = app
        .post_json(
            "/login",
            json!({"id": id, "password": "not the password"}),
            None,
        )
        .await;
    assert_error(wrong, StatusCode::BAD_REQUEST).await;

    let unknown = app
        .post_json(
            "/login",
            json!({"id": "123456789", "password": PASSWORD}),
            None,
        )
        .await;
    assert_error(unknown, StatusCode::NOT_FOUND).await;

    for body in [
        json!({"id": "abc", "password": PASSWORD}),
        json!({"id": id}),
        json!({"password": PASSWORD}),
        json!({}),
    ] {
        assert_error(
            app.post_json("/login", body, None).await,
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
}

#[tokio::test]
async fn tokens_are_stored_hashed_and_expire() {
    // The session is expired behind the server's back, in SQL, which no instance hears of:
    // without its session cache the server sees that at once (a logout is heard, see
    // hardening.rs; natural expiry is exact either way, the cache keeps expires_at).
    let app = TestApp::spawn_configured(|config| {
        config.platform.auth.session_cache_ttl_ms = 0;
    })
    .await;
    let (id, token) = app.user("Ольга", "Козлова").await;
    let other = app.register("Сергей", "Новиков").await;
    let sql = app.sql().await;

    let stored: Vec<u8> = sql
        .query_one("SELECT token_hash FROM sessions", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored.len(), 32);
    assert_ne!(stored, token.as_bytes());

    let path = format!("/friend/set/{other}");
    assert_eq!(app.put(&path, Some(&token)).await.status(), StatusCode::OK);

    let user_id: i64 = id.parse().unwrap();
    sql.execute(
        "UPDATE sessions SET expires_at = now() - interval '1 second' WHERE user_id = $1",
        &[&user_id],
    )
    .await
    .unwrap();
    let expired = app.put(&path, Some(&token)).await;
    assert_eq!(expired.headers().get("www-authenticate").unwrap(), "Bearer");
    assert_error(expired, StatusCode::UNAUTHORIZED).await;
}

#[tokio::test]
async fn unknown_and_malformed_user_ids() {
    let app = TestApp::spawn().await;
    assert_error(
        app.get("/user/get/987654321", None).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    for bad in ["abc", "-1", "0", "1.5", "99999999999999999999"] {
        assert_error(
            app.get(&format!("/user/get/{bad}"), None).await,
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
}

#[tokio::test]
async fn concurrent_registrations_all_succeed_with_distinct_ids() {
    let app = TestApp::spawn().await;
    let mut registrations = tokio::task::JoinSet::new();
    for i in 0..16 {
        let request = app
            .request(reqwest::Method::POST, "/user/register", None)
            .json(&json!({"first_name": format!("Имя{i}"), "second_name": "Параллельный", "password": PASSWORD}));
        registrations.spawn(async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            response.json::<Value>().await.unwrap()["user_id"]
                .as_str()
                .unwrap()
                .to_owned()
        });
    }
    let mut ids = registrations.join_all().await;
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 16);
    let count: i64 = app
        .sql()
        .await
        .query_one("SELECT count(*) FROM users", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 16);
}

#[tokio::test]
async fn search_is_a_case_insensitive_prefix_match_in_name_order() {
    let app = TestApp::spawn().await;
    let konstantin = app.register("Константин", "Осипов").await;
    let konstantina = app.register("Константина", "Осипова").await;
    app.register("Константин", "Петров").await;
    app.register("Кирилл", "Осипов").await;

    for token in [None, Some(app.login(&konstantin).await)] {
        let response = app
            .get(
                "/user/search?first_name=конст&last_name=ОСИ",
                token.as_deref(),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        let users: Vec<Value> = response.json().await.unwrap();
        let ids: Vec<&str> = users.iter().map(|u| u["id"].as_str().unwrap()).collect();
        assert_eq!(ids, [konstantin.as_str(), konstantina.as_str()]);
    }

    // LIKE wildcards in the input are literal characters.
    let users: Vec<Value> = app
        .get("/user/search?first_name=%25&last_name=", None)
        .await
        .json()
        .await
        .unwrap();
    assert!(users.is_empty());
    // One empty prefix is allowed; the other narrows.
    let users: Vec<Value> = app
        .get("/user/search?first_name=&last_name=Петр", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(users.len(), 1);
}

#[tokio::test]
async fn search_validates_its_parameters_and_caps_results() {
    let app = TestApp::spawn().await;
    for query in [
        "",
        "?first_name=a",
        "?last_name=a",
        "?first_name=&last_name=",
        &format!("?first_name={}&last_name=a", "я".repeat(101)),
    ] {
        assert_error(
            app.get(&format!("/user/search{query}"), None).await,
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
    app.sql()
        .await
        .batch_execute(
            "INSERT INTO users (first_name, second_name, password_hash) \
             SELECT 'Массовый', 'Пользователь' || i, 'x' FROM generate_series(1, 150) AS i",
        )
        .await
        .unwrap();
    let users: Vec<Value> = app
        .get("/user/search?first_name=мас&last_name=поль", None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(users.len(), 100);
    // Name order, byte-wise: what the index hands over without sorting every match.
    let surnames: Vec<String> = users
        .iter()
        .map(|u| u["second_name"].as_str().unwrap().to_lowercase())
        .collect();
    assert!(surnames.windows(2).all(|pair| pair[0] <= pair[1]));
    assert_eq!(
        surnames[..3],
        ["пользователь1", "пользователь10", "пользователь100"]
    );
}

#[tokio::test]
async fn the_search_query_is_served_by_the_name_prefix_index() {
    let app = TestApp::spawn().await;
    let sql = app.sql().await;
    sql.batch_execute(
        "INSERT INTO users (first_name, second_name, password_hash) \
         SELECT (ARRAY['Иван','Пётр','Анна','Мария','Олег'])[1 + i % 5], 'Фамилия' || md5(i::text), 'x' \
         FROM generate_series(1, 30000) AS i; ANALYZE users;",
    )
    .await
    .unwrap();
    // The statement the store prepares, planned for these values (custom) and for any values
    // (generic: what a prepared statement settles on after five runs).
    for mode in ["force_custom_plan", "force_generic_plan"] {
        sql.batch_execute(&format!("SET plan_cache_mode = {mode}"))
            .await
            .unwrap();
        let plan = explain(
            &sql,
            "SELECT id, first_name, second_name, birthdate, biography, city FROM users \
             WHERE lower(second_name) ~>=~ lower($1) \
               AND lower(second_name) ~<~ (lower($1) || chr(1114111)) \
               AND lower(first_name) ~>=~ lower($2) \
               AND lower(first_name) ~<~ (lower($2) || chr(1114111)) \
             ORDER BY lower(second_name) USING ~<~, lower(first_name) USING ~<~ LIMIT $3",
            &[&"ф", &"", &100i64],
        )
        .await;
        assert_index_order(&plan, "users_name_prefix_idx", mode);
        // No surname prefix: the first-name index serves it, in its order.
        let plan = explain(
            &sql,
            "SELECT id, first_name, second_name, birthdate, biography, city FROM users \
             WHERE lower(first_name) ~>=~ lower($1) \
               AND lower(first_name) ~<~ (lower($1) || chr(1114111)) \
             ORDER BY lower(first_name) USING ~<~, lower(second_name) USING ~<~ LIMIT $2",
            &[&"и", &100i64],
        )
        .await;
        assert_index_order(&plan, "users_first_name_prefix_idx", mode);
    }
}

async fn explain(
    sql: &tokio_postgres::Client,
    statement: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> String {
    let rows = sql
        .query(&format!("EXPLAIN {statement}"), params)
        .await
        .unwrap();
    rows.iter()
        .map(|row| row.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The plan reads `index` in order and stops at the limit: no scan of the table, and no sort
/// of every match.
fn assert_index_order(plan: &str, index: &str, mode: &str) {
    assert!(
        plan.contains(index),
        "{mode}: plan does not use {index}:\n{plan}"
    );
    assert!(
        !plan.contains("Seq Scan"),
        "{mode}: plan scans the table:\n{plan}"
    );
    let full_sorts = plan
        .lines()
        .filter(|line| line.contains("Sort") && !line.contains("Incremental Sort"))
        .filter(|line| !line.contains("Sort Key") && !line.contains("Presorted Key"))
        .count();
    assert_eq!(full_sorts, 0, "{mode}: plan sorts every match:\n{plan}");
}

#[tokio::test]
async fn search_uses_an_index_created_while_the_server_runs() {
    // A named prepared statement switches to a generic plan after five runs, and a generic plan
    // of `LIKE $1` can only seq-scan; it would keep doing so after the index is back. The store
    // plans each search for its values, so an index built online serves the very next search.
    let app = TestApp::spawn_configured(|config| {
        config.platform.database.pool_size = 1; // every search on the same server connection
    })
    .await;
    let sql = app.sql().await;
    sql.batch_execute(
        "INSERT INTO users (first_name, second_name, password_hash) \
         SELECT (ARRAY['Иван','Пётр','Анна','Мария','Олег'])[1 + i % 5], md5(i::text), 'x' \
         FROM generate_series(1, 200000) AS i; \
         DROP INDEX users_name_prefix_idx; ANALYZE users;",
    )
    .await
    .unwrap();
    let search = "/user/search?first_name=%D0%B8%D0%B2&last_name=ab";
    for _ in 0..8 {
        assert_eq!(app.get(search, None).await.status(), StatusCode::OK);
    }
    sql.batch_execute(
        "CREATE INDEX users_name_prefix_idx ON users \
         (lower(second_name) text_pattern_ops, lower(first_name) text_pattern_ops); ANALYZE users;",
    )
    .await
    .unwrap();
    for _ in 0..3 {
        assert_eq!(app.get(search, None).await.status(), StatusCode::OK);
    }
    // An idle backend may hold its statistics for ten seconds; one that exits flushes them.
    sql.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
        &[],
    )
    .await
    .unwrap();
    let mut scans = 0i64;
    for _ in 0..40 {
        scans = sql
            .query_one(
                "SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = 'users_name_prefix_idx'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if scans >= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(scans >= 3, "the index served {scans} of 3 searches");
}
