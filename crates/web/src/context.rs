//! What an error page needs to know about the request it answers, which the error itself does
//! not carry: who is signed in (so the page keeps the header's name and sign-out button) and
//! where "try again" should lead (the same page for a GET; home after a form, which a GET could
//! not repeat). Set per request by [`scope`], read by `error::page`.

use std::sync::Mutex;

use axum::extract::Request;
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

use crate::pages::MeLink;

struct PageContext {
    retry: String,
    signed_in: Mutex<Option<SignedIn>>,
}

struct SignedIn {
    me: MeLink,
    csrf: String,
    dialogs: bool,
}

tokio::task_local! {
    static CONTEXT: PageContext;
}

/// Middleware: runs the request inside its page context.
pub async fn scope(request: Request, next: Next) -> Response {
    let retry = match *request.method() {
        Method::GET => request
            .uri()
            .path_and_query()
            .map_or("/", |path| path.as_str())
            .to_owned(),
        _ => "/".to_owned(),
    };
    let context = PageContext {
        retry,
        signed_in: Mutex::new(None),
    };
    CONTEXT.scope(context, next.run(request)).await
}

/// Records the signed-in user of this request (their id, name, and CSRF token), and whether
/// this process serves dialogs (the header's Messages link).
pub fn signed_in(id: i64, name: String, csrf: &str, dialogs: bool) {
    let _ = CONTEXT.try_with(|context| {
        *context.signed_in.lock().expect("not poisoned") = Some(SignedIn {
            me: MeLink { id, name },
            csrf: csrf.to_owned(),
            dialogs,
        });
    });
}

/// Where "try again" leads.
pub fn retry_target() -> String {
    CONTEXT
        .try_with(|context| context.retry.clone())
        .unwrap_or_else(|_| "/".to_owned())
}

/// The page frame for the signed-in user of this request, if there was one.
pub fn signed_in_chrome(chrome: &mut crate::pages::Chrome) {
    let _ = CONTEXT.try_with(|context| {
        if let Some(signed_in) = context.signed_in.lock().expect("not poisoned").as_ref() {
            chrome.me = Some(MeLink {
                id: signed_in.me.id,
                name: signed_in.me.name.clone(),
            });
            chrome.csrf = signed_in.csrf.clone();
            chrome.dialogs = signed_in.dialogs;
        }
    });
}
