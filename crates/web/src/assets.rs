//! The stylesheet and the live-feed script, compiled in and served under names that carry a
//! hash of their content: a browser may keep them for a year, and a new build is a new name.

use std::sync::LazyLock;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

struct Asset {
    path: String,
    etag: HeaderValue,
    content_type: &'static str,
    body: &'static str,
}

impl Asset {
    fn new(stem: &str, extension: &str, content_type: &'static str, body: &'static str) -> Self {
        let digest = Sha256::digest(body.as_bytes());
        let hash: String = digest[..6]
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        Self {
            path: format!("/assets/{stem}.{hash}.{extension}"),
            etag: HeaderValue::from_str(&format!("\"{hash}\"")).expect("hex is a valid header"),
            content_type,
            body,
        }
    }
}

static STYLESHEET: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        "app",
        "css",
        "text/css; charset=utf-8",
        include_str!("../assets/app.css"),
    )
});

static LIVE_SCRIPT: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        "live",
        "js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/live.js"),
    )
});

pub fn stylesheet() -> &'static str {
    &STYLESHEET.path
}

pub fn live_script() -> &'static str {
    &LIVE_SCRIPT.path
}

/// The answer to `GET /assets/{name}` (with the request's `headers`), `None` for a name that
/// is not current: only the current names are served.
pub fn response(name: &str, headers: &HeaderMap) -> Option<Response> {
    let asset = [&*STYLESHEET, &*LIVE_SCRIPT]
        .into_iter()
        .find(|asset| asset.path.strip_prefix("/assets/") == Some(name))?;
    let cache = [
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=31536000, immutable"),
        ),
        (header::ETAG, asset.etag.clone()),
    ];
    if headers.get(header::IF_NONE_MATCH) == Some(&asset.etag) {
        return Some((StatusCode::NOT_MODIFIED, cache).into_response());
    }
    Some(
        (
            cache,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            )],
            asset.body,
        )
            .into_response(),
    )
}
