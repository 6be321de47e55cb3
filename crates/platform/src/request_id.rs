//! Request ids: taken from a caller's `x-request-id` when it is sane, made up otherwise, kept
//! for the request's task so errors and forwarded calls carry it. Below `error`, `http` and
//! `server`, which all name the request they answer.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::Request;
use axum::http::HeaderName;

pub static REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    /// Set by the outermost layer for the request being handled.
    pub(crate) static REQUEST_ID: Arc<str>;
}

/// The id of the request being handled, if called inside one.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(|id| id.to_string()).ok()
}

/// A caller's id is kept when it is short and printable, so traces join across services;
/// otherwise we make one: a per-process random prefix and a counter, unique without a syscall.
pub(crate) fn request_id_for(request: &Request) -> Arc<str> {
    if let Some(incoming) = request.headers().get(&REQUEST_ID_HEADER)
        && let Ok(text) = incoming.to_str()
        && !text.is_empty()
        && text.len() <= 64
        && text.bytes().all(|b| b.is_ascii_graphic())
    {
        return Arc::from(text);
    }
    Arc::from(fresh_request_id())
}

/// A new request id.
pub fn fresh_request_id() -> String {
    static PREFIX: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(|| {
        let mut bytes = [0u8; 4];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
        u32::from_le_bytes(bytes)
    });
    format!(
        "{prefix:08x}-{:010x}",
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}
