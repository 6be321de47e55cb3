use std::collections::BTreeSet;
use std::net::SocketAddr;

use agora_platform::testing::TestDatabase;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::proxy::ChaosProxy;
use crate::common::{TestApp, assert_error, config_for};

#[tokio::test]
async fn health_ready_and_metrics_answer() {
    let app = TestApp::spawn().await;
    let health: Value = app.get("/health", None).await.json().await.unwrap();
    assert_eq!(health, json!({"status": "ok"}));
    // The live consumer connects in the background, moments after the server starts.
    crate::common::eventually("every check ok", || async {
        let ready = app.get("/ready", None).await;
        assert_eq!(ready.status(), StatusCode::OK);
        let body = ready.json::<Value>().await.unwrap();
        let expected = json!({"status": "ready", "checks": {
            "postgres": "ok", "postgres_commits": "ok", "redis": "ok", "rabbitmq": "ok",
            "feed_worker": "ok"
        }});
        (body == expected).then_some(())
    })
    .await;

    app.get("/user/get/424242", None).await;
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    assert!(
        metrics.contains(r#"route="/user/get/{id}""#),
        "route label missing:\n{metrics}"
    );
    for name in [
        "http_requests_total",
        "http_request_duration_seconds_bucket",
        "http_requests_in_flight",
        "db_pool_connections_max",
    ] {
        assert!(metrics.contains(name), "{name} missing");
    }
}

#[tokio::test]
async fn unknown_routes_and_methods_get_the_error_envelope() {
    let app = TestApp::spawn().await;
    assert_error(app.get("/no/such/route", None).await, StatusCode::NOT_FOUND).await;
    assert_error(
        app.get("/post/create", None).await,
        StatusCode::METHOD_NOT_ALLOWED,
    )
    .await;
    // Dialogs arrive with their own issue; until then they are plainly absent.
    assert_error(app.get("/dialog/1/list", None).await, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn a_caller_supplied_request_id_is_echoed_in_the_header_and_the_error_body() {
    let app = TestApp::spawn().await;
    let response = app
        .request(reqwest::Method::GET, "/user/get/abc", None)
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    let body = assert_error(response, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["request_id"], "trace-me-42");
}

#[tokio::test]
async fn a_database_outage_gives_503_with_retry_after_and_the_service_recovers_by_itself() {
    let database = TestDatabase::create("social", agora_social::migrations).await;
    let postgres = postgres_address(&database.url);
    let proxy = ChaosProxy::start(postgres).await;
    let proxied_url = database
        .url
        .replace(&postgres.to_string(), &proxy.address.to_string());
    let app = TestApp::spawn_with(database, config_for(&proxied_url)).await;
    let id = app.register("Иван", "Петров").await;
    let profile = format!("/user/get/{id}");
    assert_eq!(app.get(&profile, None).await.status(), StatusCode::OK);

    proxy.cut();
    let response = app.get(&profile, None).await;
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap()),
        Some("1")
    );
    let body = assert_error(response, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(body["code"], 5001);
    let register = app
        .post_json(
            "/user/register",
            json!({"first_name": "A", "second_name": "B", "password": "password123"}),
            None,
        )
        .await;
    assert_error(register, StatusCode::SERVICE_UNAVAILABLE).await;
    let ready = app.get("/ready", None).await;
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.json::<Value>().await.unwrap()["status"], "degraded");

    proxy.restore();
    // The pool replaces dead connections on checkout: the first request after the outage works.
    assert_eq!(app.get(&profile, None).await.status(), StatusCode::OK);
    assert_eq!(app.get("/ready", None).await.status(), StatusCode::OK);
}

fn postgres_address(url: &str) -> SocketAddr {
    let config: tokio_postgres::Config = url.parse().unwrap();
    let host = match &config.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(host) => host.clone(),
        #[allow(unreachable_patterns)]
        _ => panic!("the test database must be reached over TCP"),
    };
    format!("{host}:{}", config.get_ports()[0]).parse().unwrap()
}

#[tokio::test]
async fn swagger_ui_is_served_offline() {
    let app = TestApp::spawn().await;
    let page = app.get("/api/swagger-ui.html", None).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("/api/swagger-ui/swagger-ui-bundle.js") && !html.contains("https://"));
    for asset in [
        "/api/swagger-ui/swagger-ui-bundle.js",
        "/api/swagger-ui/swagger-ui.css",
    ] {
        let response = app.get(asset, None).await;
        assert_eq!(response.status(), StatusCode::OK, "{asset}");
        assert!(response.bytes().await.unwrap().len() > 10_000);
    }
}

/// Official operations agora does not serve yet, with the issue that brings each.
const NOT_YET_SERVED: &[&str] = &["/dialog/{user_id}/send", "/dialog/{user_id}/list"];

#[tokio::test]
async fn our_openapi_is_a_superset_of_the_official_contract() {
    let app = TestApp::spawn().await;
    let ours: Value = app
        .get("/api/openapi.json", None)
        .await
        .json()
        .await
        .unwrap();
    // The contract as published with the course, kept in the repo so that a clone builds and
    // tests anywhere; when the course's copy sits beside the repo, the two must agree.
    let vendored = include_str!("../../api/otus-openapi.json");
    let shared_path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/otus/openapi.json"
    );
    if let Ok(shared) = std::fs::read_to_string(shared_path) {
        assert_eq!(
            serde_json::from_str::<Value>(&shared).unwrap(),
            serde_json::from_str::<Value>(vendored).unwrap(),
            "crates/social/api/otus-openapi.json differs from ../shared/otus/openapi.json"
        );
    }
    let official: Value = serde_json::from_str(vendored).unwrap();

    for (path, item) in official["paths"].as_object().unwrap() {
        if NOT_YET_SERVED.contains(&path.as_str()) {
            continue;
        }
        for (method, operation) in item.as_object().unwrap() {
            let our_operation = &ours["paths"][path][method];
            assert!(
                our_operation.is_object(),
                "{method} {path} is missing from our spec"
            );
            let our_codes: BTreeSet<&String> = our_operation["responses"]
                .as_object()
                .unwrap()
                .keys()
                .collect();
            for code in operation["responses"].as_object().unwrap().keys() {
                assert!(
                    our_codes.contains(code),
                    "{method} {path} lost official response {code}"
                );
            }
            let success = &operation["responses"]["200"]["content"]["application/json"]["schema"];
            let our_success =
                &our_operation["responses"]["200"]["content"]["application/json"]["schema"];
            assert_eq!(
                success.is_null(),
                our_success.is_null(),
                "{method} {path} changed its 200 body"
            );
        }
    }
    for schema in ["User", "Post", "PostId", "UserId", "BirthDate"] {
        let official_props = official["components"]["schemas"][schema]["properties"].as_object();
        let our_props = ours["components"]["schemas"][schema]["properties"].as_object();
        if let (Some(official_props), Some(our_props)) = (official_props, our_props) {
            for key in official_props.keys() {
                assert!(our_props.contains_key(key), "{schema}.{key} is missing");
            }
        }
    }
}

#[tokio::test]
async fn our_asyncapi_keeps_the_official_live_feed_contract() {
    let app = TestApp::spawn().await;
    let ours: Value = app
        .get("/api/asyncapi.json", None)
        .await
        .json()
        .await
        .unwrap();
    let vendored = include_str!("../../api/otus-asyncapi.json");
    let shared_path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/otus/asyncapi.json"
    );
    if let Ok(shared) = std::fs::read_to_string(shared_path) {
        assert_eq!(
            serde_json::from_str::<Value>(&shared).unwrap(),
            serde_json::from_str::<Value>(vendored).unwrap(),
            "crates/social/api/otus-asyncapi.json differs from ../shared/otus/asyncapi.json"
        );
    }
    let official: Value = serde_json::from_str(vendored).unwrap();
    for (channel, item) in official["channels"].as_object().unwrap() {
        assert_eq!(
            ours["channels"][channel]["subscribe"], item["subscribe"],
            "{channel}: the subscribe operation changed"
        );
    }
    // What the server sends is the contract's message, field for field.
    assert_eq!(
        ours["components"]["messages"],
        official["components"]["messages"]
    );
    assert_eq!(
        ours["components"]["schemas"],
        official["components"]["schemas"]
    );
}
