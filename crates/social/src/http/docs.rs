//! Our OpenAPI document and an offline Swagger UI.
//!
//! `api/openapi.json` is the official contract (`crates/social/api/otus-openapi.json`, a copy of the course's `openapi.json` 1.2.0) with every
//! status code we really return, the constraints we enforce, and the ops endpoints added; the
//! `openapi` test checks it stays a superset of the official one. Swagger UI's assets are
//! compiled in from the `swagger-ui-dist` crate, so the page works without a network.
//! `api/asyncapi.json`, served at `/api/asyncapi.json`, does the same for the live feed.

use axum::Router;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use swagger_ui_dist::{ApiDefinition, OpenApiSource};

pub const OPENAPI_JSON: &str = include_str!("../../api/openapi.json");
/// The live feed's contract: the course's AsyncAPI document with our additions (`since`, the
/// handshake's answers, close codes).
pub const ASYNCAPI_JSON: &str = include_str!("../../api/asyncapi.json");

const SWAGGER_PAGE: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>agora social network API</title>
  <link rel="stylesheet" href="/api/swagger-ui/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/api/swagger-ui/swagger-ui-bundle.js"></script>
  <script>
    window.onload = () => {
      window.ui = SwaggerUIBundle({ url: '/api/openapi.json', dom_id: '#swagger-ui', persistAuthorization: true });
    };
  </script>
</body>
</html>"#;

/// The page loads only our own script and style, plus the one inline script above (by its
/// hash would be stricter; Swagger UI itself injects inline styles, hence 'unsafe-inline' for
/// styles only).
const SWAGGER_CSP: &str = "default-src 'self'; script-src 'self' 'unsafe-inline'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
     frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

pub fn router() -> Router {
    let assets = swagger_ui_dist::generate_routes(ApiDefinition {
        uri_prefix: "/api/swagger-ui",
        api_definition: OpenApiSource::Uri("/api/openapi.json"),
        title: Some("agora social network API"),
    });
    Router::new()
        .route(
            "/api/openapi.json",
            get(|| async {
                ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON).into_response()
            }),
        )
        .route(
            "/api/asyncapi.json",
            get(|| async {
                ([(header::CONTENT_TYPE, "application/json")], ASYNCAPI_JSON).into_response()
            }),
        )
        .route(
            "/api/swagger-ui.html",
            get(|| async {
                (
                    [(header::CONTENT_SECURITY_POLICY, SWAGGER_CSP)],
                    Html(SWAGGER_PAGE),
                )
            }),
        )
        .merge(assets)
}
