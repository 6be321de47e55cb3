//! Browser sessions: the API's session token in an HttpOnly cookie, and CSRF tokens for forms.
//!
//! A signed-in form's CSRF token is derived from the session token (a hash no other site can
//! compute without the cookie), so it needs no storage and dies with the session. Forms shown
//! before sign-in use a random value kept in a cookie of its own and echoed by the form (the
//! double-submit pattern). Cookies are `SameSite=Lax` besides, so other sites' forms do not
//! carry them at all in current browsers.

use agora_platform::http::{cookie, session_cookie_name};
use agora_platform::ids::UserId;
use agora_platform::session::AuthError;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::Web;
use crate::error::WebError;

/// The anonymous forms' CSRF cookie; over HTTPS a `__Host-` one, which no other host can set
/// (see `platform::http::SECURE_SESSION_COOKIE`).
fn csrf_cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-agora_csrf"
    } else {
        "agora_csrf"
    }
}

/// The signed-in user as the page header shows them.
#[derive(Clone)]
pub struct Me {
    pub id: i64,
    pub name: String,
    pub token: String,
    pub profile: std::sync::Arc<agora_social::rules::User>,
}

/// Who is looking at a page, and the CSRF token its forms carry.
pub struct Viewer {
    pub me: Option<Me>,
    pub csrf: String,
    /// A CSRF cookie to set with the response (first anonymous visit).
    new_csrf_cookie: Option<String>,
    secure: bool,
}

impl Viewer {
    /// Refuses a form whose CSRF token is not this viewer's.
    pub fn check_csrf(&self, submitted: &str) -> Result<(), WebError> {
        let matches = submitted.len() == self.csrf.len()
            && submitted
                .bytes()
                .zip(self.csrf.bytes())
                .fold(0u8, |diff, (a, b)| diff | (a ^ b))
                == 0;
        if matches && self.new_csrf_cookie.is_none() {
            Ok(())
        } else {
            Err(WebError::Csrf)
        }
    }

    /// Adds the cookies this viewer needs to a response.
    pub fn finish(&self, mut response: Response) -> Response {
        if let Some(value) = &self.new_csrf_cookie {
            let cookie = cookie_header(csrf_cookie_name(self.secure), value, None, self.secure);
            response.headers_mut().append(header::SET_COOKIE, cookie);
        }
        response
    }

    pub fn secure(&self) -> bool {
        self.secure
    }

    /// The page header's link to whoever is signed in.
    pub fn me_link(&self) -> Option<crate::pages::MeLink> {
        self.me.as_ref().map(|me| crate::pages::MeLink {
            id: me.id,
            name: me.name.clone(),
        })
    }
}

fn derived_csrf(token: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"agora-csrf:")
        .chain_update(token.as_bytes())
        .finalize();
    hex(&digest[..16])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A `Set-Cookie` value; `max_age` `None` is a browser-session cookie, `Some(0)` deletes it.
pub fn cookie_header(name: &str, value: &str, max_age: Option<u64>, secure: bool) -> HeaderValue {
    let mut cookie = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
    if let Some(age) = max_age {
        cookie.push_str(&format!("; Max-Age={age}"));
    }
    if secure {
        cookie.push_str("; Secure");
    }
    HeaderValue::from_str(&cookie).expect("cookie values are URL-safe")
}

/// The cookie that signs a browser in with `token`.
pub fn session_cookie(web: &Web, token: &str, secure: bool) -> HeaderValue {
    cookie_header(
        session_cookie_name(secure),
        token,
        Some(web.inner.session_lifetime.as_secs()),
        secure,
    )
}

/// The cookie that signs a browser out.
pub fn cleared_session_cookie(secure: bool) -> HeaderValue {
    cookie_header(session_cookie_name(secure), "", Some(0), secure)
}

/// A chain of proxies sends `X-Forwarded-Proto: https, http`: the first is what the browser used.
fn served_over_https(parts: &Parts, web: &Web) -> bool {
    web.inner.secure_cookies
        || parts
            .headers
            .get("x-forwarded-proto")
            .and_then(|proto| proto.to_str().ok())
            .and_then(|proto| proto.split(',').next())
            .is_some_and(|first| first.trim().eq_ignore_ascii_case("https"))
}

impl FromRequestParts<Web> for Viewer {
    type Rejection = WebError;

    async fn from_request_parts(parts: &mut Parts, web: &Web) -> Result<Self, Self::Rejection> {
        let secure = served_over_https(parts, web);
        if let Some(token) = cookie(parts, session_cookie_name(secure)) {
            match web.social().sessions().authenticate(token).await {
                Ok((UserId(id), _)) => {
                    let user = web.profiles().one(web.social(), id, Some(id)).await?;
                    let csrf = derived_csrf(token);
                    let name = format!("{} {}", user.first_name, user.second_name);
                    crate::context::signed_in(id, name.clone(), &csrf, web.dialogs().is_some());
                    return Ok(Viewer {
                        csrf,
                        me: Some(Me {
                            id,
                            name,
                            token: token.to_owned(),
                            profile: user,
                        }),
                        new_csrf_cookie: None,
                        secure,
                    });
                }
                // An expired or revoked session: the visitor is simply signed out.
                Err(AuthError::Missing | AuthError::Invalid) => {}
                Err(AuthError::Database(error)) => {
                    return Err(agora_social::SocialError::Database(error).into());
                }
            }
        }
        let (csrf, new_csrf_cookie) = match cookie(parts, csrf_cookie_name(secure)) {
            Some(value) if value.len() == 32 && value.bytes().all(|b| b.is_ascii_hexdigit()) => {
                (value.to_owned(), None)
            }
            _ => {
                let mut bytes = [0u8; 16];
                rand::rngs::OsRng.fill_bytes(&mut bytes);
                let value = hex(&bytes);
                (value.clone(), Some(value))
            }
        };
        Ok(Viewer {
            me: None,
            csrf,
            new_csrf_cookie,
            secure,
        })
    }
}

/// A viewer who must be signed in: others are sent to the sign-in page, and back here after.
pub struct SignedIn(pub Viewer, pub Me);

impl FromRequestParts<Web> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, web: &Web) -> Result<Self, Self::Rejection> {
        let viewer = Viewer::from_request_parts(parts, web)
            .await
            .map_err(IntoResponse::into_response)?;
        match viewer.me.clone() {
            Some(me) => Ok(SignedIn(viewer, me)),
            None => {
                // A form sent after the session ended cannot be replayed by a GET after sign-in.
                let next = match parts.method {
                    axum::http::Method::GET => {
                        parts.uri.path_and_query().map_or("/", |path| path.as_str())
                    }
                    _ => "/",
                };
                let target = if next == "/" {
                    "/signin".to_owned()
                } else {
                    format!("/signin?next={}", encode_component(next))
                };
                Err(Redirect::to(&target).into_response())
            }
        }
    }
}

/// Percent-encodes a URL query component.
pub fn encode_component(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// The longest `next` kept; a page of this site has no longer path. Beyond it, the sign-in
/// goes home instead of echoing a client's 150 KB into a `Location` header.
pub const MAX_NEXT_BYTES: usize = 2048;

/// Where to go after signing in: only a path of this site (`/…`, not `//host`), of at most
/// [`MAX_NEXT_BYTES`]. Browsers drop tabs and newlines from a `Location` (`/\t/evil` becomes
/// `//evil`) and read `\` as `/`, so a path with either, or any other control character or a
/// space, is refused.
pub fn local_target(next: Option<&str>) -> &str {
    match next {
        Some(path)
            if path.len() <= MAX_NEXT_BYTES
                && path.starts_with('/')
                && !path.starts_with("//")
                && path
                    .bytes()
                    .all(|byte| byte > b' ' && byte != 0x7f && byte != b'\\') =>
        {
            path
        }
        _ => "/",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_only_sends_people_to_pages_of_this_site() {
        assert_eq!(
            local_target(Some("/people/42?before=7")),
            "/people/42?before=7"
        );
        for outside in [
            "//evil.example/",
            "https://evil.example/",
            "/\\evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/ /evil.example",
            "people",
        ] {
            assert_eq!(local_target(Some(outside)), "/", "{outside}");
        }
        assert_eq!(local_target(None), "/");
        let long = format!("/people/{}", "1".repeat(150 * 1024));
        assert_eq!(local_target(Some(&long)), "/", "a 150 KB next");
        let longest = format!("/{}", "a".repeat(MAX_NEXT_BYTES - 1));
        assert_eq!(local_target(Some(&longest)), longest);
    }

    #[test]
    fn a_csrf_token_belongs_to_one_session() {
        let token = derived_csrf("session-a");
        assert_eq!(token.len(), 32);
        assert_eq!(token, derived_csrf("session-a"));
        assert_ne!(token, derived_csrf("session-b"));
    }

    #[test]
    fn a_form_passes_only_with_the_viewers_token_and_an_existing_cookie() {
        let viewer = |new_cookie: Option<String>| Viewer {
            me: None,
            csrf: "0123456789abcdef0123456789abcdef".into(),
            new_csrf_cookie: new_cookie,
            secure: false,
        };
        assert!(
            viewer(None)
                .check_csrf("0123456789abcdef0123456789abcdef")
                .is_ok()
        );
        assert!(
            viewer(None)
                .check_csrf("0123456789abcdef0123456789abcdee")
                .is_err()
        );
        assert!(viewer(None).check_csrf("").is_err());
        // A first visit has no cookie yet: whatever the form says, it was not ours.
        let fresh = viewer(Some("0123456789abcdef0123456789abcdef".into()));
        assert!(
            fresh
                .check_csrf("0123456789abcdef0123456789abcdef")
                .is_err()
        );
    }
}
