//! The platform pieces as another service uses them: a service that is not the social network
//! checks the social network's bearer tokens through `agora_platform::session`, served by
//! `agora_platform::service::run`, without any of the social crate's internals.

use agora_platform::auth::SessionCache;
use agora_platform::cache::{Redis, RedisConfig};
use agora_platform::db;
use agora_platform::http::OpsEndpoints;
use agora_platform::service::{Service, run};
use agora_platform::session::{Authenticated, Sessions};
use axum::Router;
use axum::routing::get;
use reqwest::{Method, StatusCode};
use tokio::net::TcpListener;

use crate::common::{TestApp, assert_error, eventually, redis_url};

/// Another service on its own listener: `/whoami` answers the caller's user id.
async fn spawn_other_service(
    app: &TestApp,
) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let pool = db::connect_pool(&app.config.platform.database, "other-service").unwrap();
    let redis = Redis::new(&RedisConfig::for_url(redis_url())).unwrap();
    let cache = SessionCache::new(
        &app.config.platform.auth,
        redis,
        &app.config.platform.key_prefix(),
    );
    let sessions = Sessions::new(pool, cache.clone());
    let api = Router::new()
        .route(
            "/whoami",
            get(|caller: Authenticated| async move { caller.user.to_string() }),
        )
        .with_state(sessions);
    let service = Service::new("other", api, OpsEndpoints::default())
        .background(move |stop| cache.listen(stop));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let http = app.config.http.clone();
    tokio::spawn(async move {
        run(vec![service], listener, &http, async move {
            let _ = stopped.await;
        })
        .await
    });
    (address, stop)
}

#[tokio::test]
async fn another_service_checks_the_same_tokens_and_hears_of_logouts() {
    let app = TestApp::spawn().await;
    let (address, _stop) = spawn_other_service(&app).await;
    let (id, token) = app.user("Сервис", "Соседний").await;
    let whoami = |token: Option<String>| async move {
        let mut request = reqwest::Client::new().get(format!("http://{address}/whoami"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    };

    let response = whoami(Some(token.clone())).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), id);

    let response = whoami(None).await;
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    assert_error(response, StatusCode::UNAUTHORIZED).await;
    assert_error(
        whoami(Some("not-a-token".into())).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;

    // The other service has cached the token (once it listens); a logout on the social
    // network reaches it.
    eventually("the other service caches the token", || async {
        (whoami(Some(token.clone())).await.status() == StatusCode::OK).then_some(())
    })
    .await;
    let response = app
        .request(Method::POST, "/logout", Some(&token))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    eventually("the other service refuses the ended session", || async {
        (whoami(Some(token.clone())).await.status() == StatusCode::UNAUTHORIZED).then_some(())
    })
    .await;
}

#[tokio::test]
async fn one_process_serves_several_services_with_one_ready_and_health() {
    let app = TestApp::spawn().await; // for its HTTP settings
    let (stopped_tx, mut stopped) = tokio::sync::mpsc::unbounded_channel::<&str>();
    let service = |name: &'static str, path: &'static str| {
        let stopped_tx = stopped_tx.clone();
        let ops = OpsEndpoints::default().check(name, || Box::pin(async { Ok(()) }));
        Service::new(
            name,
            Router::new().route(path, get(move || async move { name })),
            ops,
        )
        .background(move |mut stop| async move {
            let _ = stop.wait_for(|stop| *stop).await;
            let _ = stopped_tx.send(name);
        })
    };
    let services = vec![service("first", "/first"), service("second", "/second")];
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let http = app.config.http.clone();
    let server = tokio::spawn(async move {
        run(services, listener, &http, async move {
            let _ = stop_rx.await;
        })
        .await
    });
    for (path, body) in [("/first", "first"), ("/second", "second")] {
        let response = reqwest::get(format!("http://{address}{path}"))
            .await
            .unwrap();
        assert_eq!(response.text().await.unwrap(), body);
    }
    let response = reqwest::get(format!("http://{address}/health"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let ready: serde_json::Value = reqwest::get(format!("http://{address}/ready"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["checks"]["first"], "ok");
    assert_eq!(ready["checks"]["second"], "ok");

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    let mut names = vec![stopped.recv().await.unwrap(), stopped.recv().await.unwrap()];
    names.sort();
    assert_eq!(
        names,
        ["first", "second"],
        "every background task is told to stop"
    );
}
