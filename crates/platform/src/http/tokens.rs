//! Where a request carries its session token: a bearer header, or a cookie from our own pages.

use axum::http::header;
use axum::http::request::Parts;

/// The bearer token of a request, if it carries one.
pub fn bearer_token(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The cookie a browser's session token travels in (the web front end sets it at sign-in).
pub const SESSION_COOKIE: &str = "agora_session";

/// The same cookie over HTTPS. Browsers accept a `__Host-` cookie only from this very host
/// over HTTPS (no `Domain`, `Path=/`, `Secure`), so a sibling subdomain or a man in the middle
/// of a plain-HTTP request cannot plant one: over HTTPS only this name is trusted.
pub const SECURE_SESSION_COOKIE: &str = "__Host-agora_session";

/// The session cookie's name for a site served over HTTPS (`secure`) or not.
pub fn session_cookie_name(secure: bool) -> &'static str {
    if secure {
        SECURE_SESSION_COOKIE
    } else {
        SESSION_COOKIE
    }
}

/// The value of cookie `name`, if the request carries it.
pub fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        // Pair by pair: another site on the same host name may set a cookie that is not
        // ASCII, and it must not hide ours.
        .flat_map(|value| value.as_bytes().split(|byte| *byte == b';'))
        .filter_map(|pair| std::str::from_utf8(pair).ok())
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim_matches('"'))
        .filter(|value| !value.is_empty())
}

/// The session token of a request: its bearer token, or else its session cookie when the
/// request comes from a page of this server. Browsers attach cookies to requests other sites
/// start, so a cookie counts only with an `Origin` naming this host (every WebSocket handshake
/// and every cross-origin fetch carries one); forms have their own CSRF check.
pub fn session_token(parts: &Parts) -> Option<&str> {
    if let Some(token) = bearer_token(parts) {
        return Some(token);
    }
    let origin = parts.headers.get(header::ORIGIN)?.to_str().ok()?;
    let host = match parts.headers.get(header::HOST) {
        Some(host) => host.to_str().ok()?,
        None => parts.uri.authority()?.as_str(),
    };
    if !same_authority(origin, host) {
        return None;
    }
    // Only this host over HTTPS can set the __Host- cookie, so it counts whatever the page's
    // scheme (a site marked secure by configuration may still be reached over plain HTTP on
    // localhost); the plain one counts only for a page served over plain HTTP.
    let http = origin
        .get(..7)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("http://"));
    cookie(parts, SECURE_SESSION_COOKIE)
        .or_else(|| http.then(|| cookie(parts, SESSION_COOKIE)).flatten())
}

/// Whether an `Origin` (`scheme://host[:port]`) names the same place as a `Host` header: host
/// names compared without case, a scheme's default port the same as none.
fn same_authority(origin: &str, host: &str) -> bool {
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => ":80",
        "https" => ":443",
        _ => return false,
    };
    let normal = |authority: &str| {
        let lower = authority.to_ascii_lowercase();
        lower
            .strip_suffix(default_port)
            .map(str::to_owned)
            .unwrap_or(lower)
    };
    normal(authority) == normal(host)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn parts(headers: &[(&str, &str)]) -> Parts {
        let mut request = axum::http::Request::builder().uri("/post/feed/posted");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(()).unwrap().into_parts().0
    }

    #[test]
    fn cookies_are_found_by_name_among_others() {
        let request = parts(&[("cookie", "a=1; agora_session=tok; b=2")]);
        assert_eq!(cookie(&request, SESSION_COOKIE), Some("tok"));
        assert_eq!(cookie(&request, "missing"), None);
        let mut with_utf8 = parts(&[]);
        with_utf8.headers.insert(
            header::COOKIE,
            HeaderValue::from_bytes("other=caf\u{e9}; agora_session=tok".as_bytes()).unwrap(),
        );
        assert_eq!(cookie(&with_utf8, SESSION_COOKIE), Some("tok"));
        assert_eq!(
            cookie(&parts(&[("cookie", "agora_session=")]), SESSION_COOKIE),
            None
        );
    }

    #[test]
    fn a_session_cookie_counts_only_from_a_page_of_this_host() {
        let cookie = ("cookie", "agora_session=tok");
        let host = ("host", "agora.example:8080");
        let same = parts(&[cookie, host, ("origin", "http://agora.example:8080")]);
        assert_eq!(session_token(&same), Some("tok"));
        let other = parts(&[cookie, host, ("origin", "http://evil.example")]);
        assert_eq!(session_token(&other), None);
        let no_origin = parts(&[cookie, host]);
        assert_eq!(session_token(&no_origin), None);
        let bearer = parts(&[cookie, host, ("authorization", "Bearer api")]);
        assert_eq!(session_token(&bearer), Some("api"));
        // Over HTTPS only the __Host- cookie counts: a plain one may have been planted.
        let https = ("origin", "https://agora.example:8080");
        assert_eq!(session_token(&parts(&[cookie, host, https])), None);
        let secure = ("cookie", "agora_session=planted; __Host-agora_session=real");
        assert_eq!(session_token(&parts(&[secure, host, https])), Some("real"));
        // A site marked secure by configuration, reached over plain HTTP (localhost).
        let plain = ("origin", "http://agora.example:8080");
        assert_eq!(session_token(&parts(&[secure, host, plain])), Some("real"));
    }

    #[test]
    fn origins_match_hosts_without_case_or_default_ports() {
        assert!(same_authority("http://Agora.Example", "agora.example:80"));
        assert!(same_authority("https://agora.example:443", "agora.example"));
        assert!(same_authority("http://[::1]:8080", "[::1]:8080"));
        assert!(!same_authority(
            "http://agora.example:8080",
            "agora.example"
        ));
        assert!(!same_authority(
            "https://agora.example.evil",
            "agora.example"
        ));
        assert!(!same_authority("null", "agora.example"));
    }
}
