//! Every failure as a page a person can act on: the status the API would answer, in the site's
//! look, with what to do next. Form errors are not here: handlers show them next to the field.

use agora_dialogs::DialogsError;
use agora_platform::request_id::current_request_id;
use agora_social::SocialError;
use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use crate::pages::{Chrome, ErrorPage};

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error(transparent)]
    Social(#[from] SocialError),
    #[error(transparent)]
    Dialogs(#[from] DialogsError),
    /// A form without this visitor's CSRF token: forged, or from a page older than the session.
    #[error("this form has expired or did not come from this site")]
    Csrf,
    #[error("{0}")]
    NotFound(&'static str),
    #[error("{0}")]
    BadRequest(String),
    /// A request the framework refused (a form too large, of the wrong type), with its status.
    #[error("{1}")]
    Rejected(StatusCode, String),
    #[error("template: {0}")]
    Template(#[from] askama::Error),
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (status, message) = match &self {
            WebError::Csrf => (StatusCode::FORBIDDEN, self.to_string()),
            WebError::NotFound(message) => (StatusCode::NOT_FOUND, (*message).to_owned()),
            WebError::BadRequest(message) => (StatusCode::BAD_REQUEST, message.clone()),
            WebError::Rejected(status, message) => (*status, message.clone()),
            WebError::Template(error) => {
                tracing::error!(%error, "page rendering failed");
                (StatusCode::INTERNAL_SERVER_ERROR, String::new())
            }
            // The API's mapping decides the status (and logs what it must); the page words it.
            WebError::Social(_) | WebError::Dialogs(_) => {
                let message = self.to_string();
                let api = match self {
                    WebError::Social(error) => error.into_response(),
                    WebError::Dialogs(error) => error.into_response(),
                    _ => unreachable!(),
                };
                let status = api.status();
                let retry = api.headers().get(header::RETRY_AFTER).cloned();
                let mut page = page(status, &message);
                if let Some(retry) = retry {
                    page.headers_mut().insert(header::RETRY_AFTER, retry);
                }
                return page;
            }
        };
        page(status, &message)
    }
}

/// The page for a status alone (unknown paths, wrong methods).
pub fn status_page(status: StatusCode) -> Response {
    page(status, "")
}

fn page(status: StatusCode, detail: &str) -> Response {
    let (title, advice) = match status.as_u16() {
        400 => ("That did not work", "Go back, correct it and try again."),
        403 => ("Not allowed", "Go back, reload the page and try again."),
        404 => (
            "Page not found",
            "The address may be mistyped, or what it showed was deleted.",
        ),
        405 => ("Page not found", "This address is not a page."),
        413 => ("That was too long", "Go back, shorten it and try again."),
        429 => ("Too many attempts", "Wait a little, then try again."),
        503 => (
            "We will be right back",
            "Part of agora is not answering at the moment. This page retries by itself in a few seconds.",
        ),
        _ => ("Something went wrong", "Try again in a moment."),
    };
    // 5xx detail is for operators (logs, the request id), not for the page.
    let detail = if status.is_server_error() { "" } else { detail };
    let mut chrome = Chrome::anonymous(title);
    crate::context::signed_in_chrome(&mut chrome);
    let retry = (status == StatusCode::SERVICE_UNAVAILABLE).then(crate::context::retry_target);
    let body = ErrorPage {
        chrome,
        status: status.as_u16(),
        title,
        detail,
        advice,
        retry,
        request_id: current_request_id().unwrap_or_default(),
    }
    .render()
    .unwrap_or_else(|_| format!("<!doctype html><title>{title}</title><h1>{title}</h1>"));
    let mut response = (status, Html(body)).into_response();
    crate::headers::page_headers(response.headers_mut());
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .entry(header::RETRY_AFTER)
            .or_insert(HeaderValue::from_static("5"));
    }
    response
}
