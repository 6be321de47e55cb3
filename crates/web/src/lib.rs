//! agora's web front end: pages rendered on the server from compiled-in templates, over the
//! same operations the JSON API calls (no HTTP hop), with browser sessions in a cookie backed
//! by the API's revocable sessions. Everything works without JavaScript except the live feed,
//! which one small script reads from `/post/feed/posted`. See docs/ui.md.
//!
//! Layers: `handlers` (thin: parse a form, call the social network or dialogs, pick a page)
//! render `pages` (template structs); `session` holds the cookie and CSRF rules; `error` turns
//! every failure into a page a person can act on.

mod assets;
pub mod config;
mod context;
mod error;
mod handlers;
mod headers;
mod pages;
mod profiles;
mod session;

use std::sync::Arc;
use std::time::Duration;

use agora_dialogs::rules::Dialogs;
use agora_platform::http::OpsEndpoints;
use agora_platform::service::Service;
use agora_social::rules::Social;

pub use config::WebConfig;

/// What the pages work with. Cheap to clone.
#[derive(Clone)]
pub struct Web {
    inner: Arc<WebState>,
}

struct WebState {
    social: Social,
    /// `None` when this process does not run dialogs: the pages then say so.
    dialogs: Option<Dialogs>,
    secure_cookies: bool,
    session_lifetime: Duration,
    profiles: profiles::Profiles,
}

impl Web {
    pub fn new(
        social: Social,
        dialogs: Option<Dialogs>,
        config: &WebConfig,
        session_lifetime: Duration,
    ) -> Self {
        Self {
            inner: Arc::new(WebState {
                social,
                dialogs,
                secure_cookies: config.secure_cookies,
                session_lifetime,
                profiles: profiles::Profiles::default(),
            }),
        }
    }

    fn social(&self) -> &Social {
        &self.inner.social
    }

    fn profiles(&self) -> &profiles::Profiles {
        &self.inner.profiles
    }

    fn dialogs(&self) -> Option<&Dialogs> {
        self.inner.dialogs.as_ref()
    }
}

/// The web front end as a service of the platform: its pages and assets, and the error pages
/// browsers get for paths no service knows.
pub fn service(web: Web) -> Service {
    Service::new("web", handlers::router(web), OpsEndpoints::default())
        .error_pages(Arc::new(error::status_page))
}
