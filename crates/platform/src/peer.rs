//! Who sent a request: the TCP peer, or the client a trusted proxy names.

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;

/// The client's IP address: the peer of the TCP connection, or what a trusted proxy says it
/// forwarded (see [`client_ip`]).
pub struct ClientAddress(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let resolved = parts.extensions.get::<ClientIp>().map(|client| client.0);
        Ok(ClientAddress(resolved.or_else(|| {
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|info| info.0.ip())
        })))
    }
}

/// The client address the server loop resolved for a request.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub std::net::IpAddr);

/// Who sent a request. A peer that is not a trusted proxy is the client, whatever its headers
/// say. Behind trusted proxies, `X-Forwarded-For` is read from the right, since each proxy
/// appends the address it heard from: the first entry no trusted proxy wrote is the client.
/// Entries to its left are whatever the client chose to send, and are never believed.
pub fn client_ip(
    peer: std::net::IpAddr,
    headers: &HeaderMap,
    trusted: &[std::net::IpAddr],
) -> std::net::IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let mut client = peer;
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .collect::<Vec<_>>();
    for entry in forwarded.into_iter().rev() {
        let Ok(address) = entry.trim().parse::<std::net::IpAddr>() else {
            // A garbled hop: what lies left of it cannot be attributed to anyone.
            break;
        };
        client = address;
        if !trusted.contains(&address) {
            break;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderMap;

    #[test]
    fn only_a_trusted_proxy_may_name_the_client() {
        let proxy: std::net::IpAddr = "10.0.0.1".parse().unwrap();
        let peer: std::net::IpAddr = "127.0.0.9".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "6.6.6.6, 127.0.0.2".parse().unwrap());
        // Anyone else's header is ignored.
        assert_eq!(super::client_ip(peer, &headers, &[proxy]), peer);
        // Behind the proxy, the entry it appended counts, not what the client wrote before it.
        assert_eq!(
            super::client_ip(proxy, &headers, &[proxy]),
            "127.0.0.2".parse::<std::net::IpAddr>().unwrap()
        );
        // A chain of trusted proxies is walked through.
        headers.insert("x-forwarded-for", "127.0.0.3, 10.0.0.2".parse().unwrap());
        let second: std::net::IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(
            super::client_ip(proxy, &headers, &[proxy, second]),
            "127.0.0.3".parse::<std::net::IpAddr>().unwrap()
        );
        // A proxy that forwarded nothing is the client.
        assert_eq!(super::client_ip(proxy, &HeaderMap::new(), &[proxy]), proxy);
    }
}
